import { copyFile, lstat, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { OrchestratorError } from '../errors.js';
import { parsePatchFiles, touchedPaths, type PatchFileChange } from './patch-files.js';

/**
 * A private, patchable view of the user's source tree: a hard-link farm, so
 * creating it copies no file contents (3 s for 78,000 files) and compiles see
 * the same bytes. The user's tree must never change, so before a patch is
 * applied, every file it touches gets its own inode in the view (copy, then
 * rename over the link). GNU patch would also replace files by rename, but
 * patch mode changes are chmod()s, which would reach through a shared inode.
 */

export interface AppliedPatch {
  /** The patch file as given. */
  patchFile: string;
  changes: PatchFileChange[];
  /** Source-tree paths the patch adds, modifies, deletes or renames (both names). */
  touched: string[];
}

/** Creates the hard-link farm `viewRoot` (must not exist) of `sourceDir`. */
export async function createSourceView(sourceDir: string, viewRoot: string): Promise<void> {
  // cp -a copies a symlink as a symlink: given a link to the tree, the "view" would be the user's tree itself.
  let realSource: string;
  try {
    realSource = await realpath(sourceDir);
  } catch {
    throw new OrchestratorError('ORCH_VIEW_FAILED', `${sourceDir}: source tree not found: pass the kernel source directory`);
  }
  const r = await execa('cp', ['-al', '--', realSource, viewRoot], { reject: false, stdin: 'ignore' });
  if (r.exitCode === 0) return;
  const crossDevice = /cross-device/i.test(r.stderr);
  const hint = crossDevice
    ? 'put the work dir on the same filesystem as the source tree (hard links cannot cross filesystems)'
    : 'check that the work dir is writable and has free inodes';
  throw new OrchestratorError(
    'ORCH_VIEW_FAILED',
    `could not link ${sourceDir} into ${viewRoot}: ${firstLine(r.stderr) || r.shortMessage}: ${hint}`,
  );
}

export interface ApplyPatchesOptions {
  /**
   * Called with each patch's touched paths (checked to be inside the tree)
   * before its dry run: a sparse view puts those files in place here.
   */
  beforeDryRun?: (touched: readonly string[], patchFile: string) => Promise<void>;
}

/**
 * Applies `patchFiles` in order to the view, each one first checked with
 * `patch --dry-run` (against the tree as the previous patches left it).
 */
export async function applyPatches(
  viewRoot: string,
  patchFiles: readonly string[],
  options: ApplyPatchesOptions = {},
): Promise<AppliedPatch[]> {
  const applied: AppliedPatch[] = [];
  for (const patchFile of patchFiles) {
    const changes = await readPatch(patchFile);
    const touched = touchedPaths(changes);
    for (const p of touched) assertInsideTree(p, patchFile);
    await options.beforeDryRun?.(touched, patchFile);

    const dry = await runPatch(viewRoot, patchFile, true);
    if (dry.exitCode !== 0) throw doesNotApply(patchFile, viewRoot, dry.output, changes, applied.length);

    for (const p of touched) await giveOwnInode(path.join(viewRoot, p), patchFile);
    const real = await runPatch(viewRoot, patchFile, false);
    if (real.exitCode !== 0) {
      // The dry run passed, so this is the environment (disk full, permissions), not the patch.
      throw new OrchestratorError(
        'ORCH_VIEW_FAILED',
        `${patchFile}: patch failed in ${viewRoot} after its dry run succeeded: ${firstLine(real.output)}: check free space and permissions of the work dir`,
      );
    }
    applied.push({ patchFile, changes, touched });
  }
  return applied;
}

async function readPatch(patchFile: string): Promise<PatchFileChange[]> {
  let text: string;
  try {
    text = await readFile(patchFile, 'utf8');
  } catch (e) {
    throw new OrchestratorError(
      'ORCH_PATCH_UNREADABLE',
      `${patchFile}: cannot read the patch (${(e as NodeJS.ErrnoException).code ?? String(e)}): check the path`,
    );
  }
  const changes = parsePatchFiles(text);
  if (changes.length === 0) {
    throw new OrchestratorError(
      'ORCH_PATCH_EMPTY',
      `${patchFile}: no file changes found (expected unified diff headers '--- a/FILE' / '+++ b/FILE'): pass a patch made with git diff or diff -u`,
    );
  }
  return changes;
}

function assertInsideTree(p: string, patchFile: string): void {
  if (path.posix.isAbsolute(p) || p.split('/').includes('..')) {
    throw new OrchestratorError(
      'ORCH_PATCH_DOES_NOT_APPLY',
      `${patchFile}: touches '${p}', outside the source tree: patches must use paths relative to the tree root (a/..., b/...)`,
    );
  }
}

async function runPatch(viewRoot: string, patchFile: string, dryRun: boolean): Promise<{ exitCode: number; output: string }> {
  const args = ['-p1', '--forward', '--batch', '--no-backup-if-mismatch', '--reject-file=-', '-d', viewRoot, '-i', path.resolve(patchFile)];
  if (dryRun) args.unshift('--dry-run');
  const r = await execa('patch', args, { reject: false, stdin: 'ignore', all: true });
  if (r.exitCode === undefined) {
    throw new OrchestratorError('ORCH_VIEW_FAILED', `cannot run patch (${r.shortMessage}): install GNU patch (apt-get install patch)`);
  }
  return { exitCode: r.exitCode, output: r.all ?? '' };
}

/** Breaks the hard link to the user's tree: afterwards writes to `file` stay in the view. */
export async function giveOwnInode(file: string, patchFile: string): Promise<void> {
  let st;
  try {
    st = await lstat(file);
  } catch {
    return; // a file the patch creates
  }
  if (st.isSymbolicLink()) {
    // A symlink in the view may point into the user's tree; patching through it would write there.
    throw new OrchestratorError(
      'ORCH_PATCH_DOES_NOT_APPLY',
      `${patchFile}: touches ${file}, a symbolic link in the source tree: patch the file it points to instead`,
    );
  }
  if (!st.isFile() || st.nlink < 2) return;
  const tmp = `${file}.klpforge-cow`;
  try {
    await copyFile(file, tmp);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    const why = (e as NodeJS.ErrnoException).code === 'ENOSPC' ? 'No space left on device' : (e as Error).message;
    throw new OrchestratorError(
      'ORCH_VIEW_FAILED',
      `${file}: cannot give the view its own copy before ${patchFile} changes it (${why}): check free space and permissions of the work dir`,
    );
  }
  const after = await stat(file);
  if (after.ino === st.ino) {
    throw new OrchestratorError(
      'ORCH_VIEW_FAILED',
      `${file}: still shares its inode with the source tree after copying: the work dir's filesystem does not support what the view needs; use another --cache-dir`,
    );
  }
}

/**
 * The error for a patch that does not apply: patch's own verdict per file and
 * the text of each failed hunk, which is what the user needs to rebase it.
 */
function doesNotApply(patchFile: string, viewRoot: string, output: string, changes: PatchFileChange[], earlier: number): OrchestratorError {
  const byPath = new Map(changes.map((c) => [c.path, c]));
  const details: string[] = [];
  let file: string | undefined;
  for (const line of output.split('\n')) {
    const checking = /^(?:checking|patching) file '?(.+?)'?$/.exec(line);
    if (checking) {
      file = checking[1];
      continue;
    }
    const failed = /^Hunk #(\d+) FAILED at (\d+)/.exec(line);
    if (failed && file !== undefined) {
      const hunk = byPath.get(file)?.hunks[Number(failed[1]) - 1];
      details.push(`${file}: hunk #${failed[1]} FAILED at line ${failed[2]}${hunk ? `:\n${hunk}` : ''}`);
    }
  }
  const after = earlier > 0 ? ` (after the ${earlier} patch${earlier > 1 ? 'es' : ''} before it)` : '';
  const summary = `${patchFile}: does not apply to the source tree${after}: rebase the patch onto this kernel version`;
  const body = details.length > 0 ? details.join('\n') : output.trim();
  return new OrchestratorError('ORCH_PATCH_DOES_NOT_APPLY', `${summary}\n${body.replaceAll(viewRoot, '<tree>')}`);
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? '';
}
