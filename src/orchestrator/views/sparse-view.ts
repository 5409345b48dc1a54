import { link, lstat, mkdir, readdir, readlink, realpath, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { OrchestratorError } from '../errors.js';
import { applyPatches, giveOwnInode, type AppliedPatch } from './source-view.js';

/**
 * A sparse private view of the user's source tree: the same paths as a full
 * hard-link farm (`createSourceView`), made from a few hundred entries instead
 * of the tree's 80,000.
 *
 * The view's root is a real directory holding one entry per entry of the
 * tree's root. A directory is *real* in the view (made, then filled with one
 * entry per entry of the tree's: files hard-linked, subdirectories as
 * symbolic links to the tree's, the tree's own symbolic links copied) when
 *   - a patch touches a path below it (so patch only ever writes real
 *     directories: the touched files get their own inode first, as in the
 *     full view), or
 *   - a compile leaves it through `..` (a recorded dependency or flag
 *     `dir/../x`: the physical `..` of a symlinked directory would be the
 *     tree's parent, not the view's).
 * Every other directory is a symbolic link into the tree, to a subtree the
 * patches do not touch, where the tree's bytes are the view's bytes.
 *
 * So a path below the view resolves to what the full view gives for it, with
 * the same spelling (kbuild's `-fmacro-prefix-map` and the include order work
 * unchanged), except where a path goes down into a symlinked directory and
 * back up with `..`, or follows a symbolic link of the tree out of an
 * untouched subtree. Both are caught after each compile, from the files gcc
 * says it read (`firstMismatch`); the caller then compiles that object in a
 * full view. What no check can see is a lookup that *fails* through such a
 * path where the full view would find a file the patch creates.
 *
 * The user's tree is never written: patch writes only real view directories,
 * and touched files are copies; nothing else writes the view after patching.
 */

type DirState = 'real' | 'absent' | 'not-a-dir';

export class SparseView {
  /** Tree-relative directory ('' = root) → what it is in the view. `absent` answers are not kept: a patch may create the directory. */
  private readonly dirs = new Map<string, Promise<DirState>>();
  /** Every path the applied patches touch (modified, added, deleted, both ends of renames and copies). */
  readonly touched = new Set<string>();
  /** The view root's physical path (the work dir may be reached through a symbolic link). */
  private rootReal = '';

  private constructor(
    /** The view root, as compile commands spell it. */
    readonly root: string,
    /** The source tree's physical path. */
    readonly tree: string,
  ) {}

  /** Makes the view root `viewRoot` (its parent must exist, it must not) for `sourceDir`. */
  static async create(sourceDir: string, viewRoot: string): Promise<SparseView> {
    let tree: string;
    try {
      tree = await realpath(sourceDir);
    } catch {
      throw new OrchestratorError('ORCH_VIEW_FAILED', `${sourceDir}: source tree not found: pass the kernel source directory`);
    }
    try {
      await mkdir(viewRoot);
    } catch (e) {
      throw new OrchestratorError(
        'ORCH_VIEW_FAILED',
        `cannot make the source view ${viewRoot} (${(e as NodeJS.ErrnoException).code ?? String(e)}): use an empty, writable work dir for each build`,
      );
    }
    const view = new SparseView(path.resolve(viewRoot), tree);
    view.rootReal = await realpath(viewRoot);
    const root = view.fill('').then((): DirState => 'real');
    view.dirs.set('', root);
    await root;
    return view;
  }

  /** Applies the patches in order (each checked with a dry run first), after putting the files they touch in place. */
  async applyPatches(patchFiles: readonly string[]): Promise<AppliedPatch[]> {
    return applyPatches(this.root, patchFiles, {
      beforeDryRun: async (touched, patchFile) => {
        for (const p of touched) {
          const rel = path.posix.normalize(p);
          this.touched.add(rel);
          await this.prepareTouched(rel, patchFile);
        }
      },
    });
  }

  /**
   * Makes real every directory that a path spelled `TREE/.../dir/../...`
   * leaves through `..`. `paths` are as compile records spell them;
   * `recordedTree` is the tree path they start with. Others are ignored.
   */
  async realizeDotDotDirs(paths: Iterable<string>, recordedTree: string): Promise<void> {
    const prefix = `${recordedTree.replace(/\/+$/, '')}/`;
    const dirs = new Set<string>();
    for (const p of paths) {
      if (!p.startsWith(prefix) || !p.includes('/../')) continue;
      const stack: string[] = [];
      for (const part of p.slice(prefix.length).split('/')) {
        if (part === '' || part === '.') continue;
        if (part !== '..') {
          stack.push(part);
          continue;
        }
        if (stack.length > 0) dirs.add(stack.join('/'));
        stack.pop();
      }
    }
    await Promise.all([...dirs].map((d) => this.realizeDir(d)));
  }

  /**
   * The first file gcc read (`deps`, as its dependency file lists them,
   * relative ones to `cwd`) that the full view would not have given it: one
   * reached through the tree where the full view resolves elsewhere, or a
   * touched path read from the tree. Undefined when every file matches.
   */
  async firstMismatch(deps: readonly string[], cwd: string): Promise<string | undefined> {
    const prefix = `${this.root}/`;
    const checks = deps.map(async (dep): Promise<string | undefined> => {
      const raw = dep.startsWith('/') ? dep : `${cwd}/${dep}`;
      if (!raw.startsWith(prefix)) return undefined; // the build dir's generated files, the compiler's own headers
      const physical = await realpath(raw).catch(() => undefined);
      if (physical === undefined) return dep;
      // Reached through real view directories only: those hold exactly the full view's entries.
      if (physical.startsWith(`${this.rootReal}/`)) return undefined;
      const full = await realpath(`${this.tree}/${raw.slice(prefix.length)}`).catch(() => undefined);
      if (full !== physical) return dep;
      return this.touched.has(path.relative(this.tree, physical)) ? dep : undefined;
    });
    for (const r of await Promise.all(checks)) if (r !== undefined) return r;
    return undefined;
  }

  /** Before a patch runs: every directory above `rel` real (or absent, for patch to create), and `rel` a file of the view's own. */
  private async prepareTouched(rel: string, patchFile: string): Promise<void> {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const state = await this.realizeDir(dir);
      if (state === 'absent') break;
      if (state === 'not-a-dir') {
        throw new OrchestratorError(
          'ORCH_PATCH_DOES_NOT_APPLY',
          `${patchFile}: touches ${rel} through ${dir}, which is a symbolic link or a file in the source tree: patch the path it points to instead`,
        );
      }
    }
    await giveOwnInode(path.join(this.root, rel), patchFile);
  }

  /** Makes `rel` a real directory of the view (its parents first), filled from the tree's. */
  private realizeDir(rel: string): Promise<DirState> {
    const known = this.dirs.get(rel);
    if (known) return known;
    const state = (async (): Promise<DirState> => {
      const parent = path.posix.dirname(rel);
      const up = await this.realizeDir(parent === '.' ? '' : parent);
      if (up !== 'real') return up;
      const view = path.join(this.root, rel);
      const [v, t] = await Promise.all([lstat(view).catch(() => undefined), lstat(path.join(this.tree, rel)).catch(() => undefined)]);
      if (v?.isDirectory()) return 'real'; // made by a patch: the tree has no such directory
      if (t === undefined) return v === undefined ? 'absent' : 'not-a-dir';
      if (!t.isDirectory()) return 'not-a-dir'; // a file, or a symbolic link of the tree's (copied as such)
      if (v !== undefined) {
        if (!v.isSymbolicLink()) return 'not-a-dir';
        await unlink(view);
      }
      await mkdir(view);
      await this.fill(rel);
      return 'real';
    })();
    this.dirs.set(rel, state);
    void state.then(
      (s) => {
        if (s === 'absent') this.dirs.delete(rel);
      },
      () => {},
    );
    return state;
  }

  /** One view entry per entry of the tree's directory `rel`; entries already there are kept. */
  private async fill(rel: string): Promise<void> {
    const from = path.join(this.tree, rel);
    const to = path.join(this.root, rel);
    const entries = await readdir(from, { withFileTypes: true });
    await Promise.all(
      entries.map(async (e) => {
        const src = path.join(from, e.name);
        const dst = path.join(to, e.name);
        try {
          if (e.isDirectory()) await symlink(src, dst);
          else if (e.isFile()) await link(src, dst);
          else if (e.isSymbolicLink()) await symlink(await readlink(src), dst);
          // sockets, fifos and devices are not source
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EEXIST') return;
          const hint =
            code === 'EXDEV'
              ? 'put the work dir on the same filesystem as the source tree (hard links cannot cross filesystems)'
              : 'check that the work dir is writable and has free inodes';
          throw new OrchestratorError('ORCH_VIEW_FAILED', `could not link ${src} into ${dst} (${code ?? String(err)}): ${hint}`);
        }
      }),
    );
  }
}
