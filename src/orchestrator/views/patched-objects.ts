import { access, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { affectedObjects, type NotLivepatchableObject } from '../kbuild/affected.js';
import { buildIndex, isSameTree, type BuildIndex, type IndexedObject, type ObjectPath, type SourcePath } from '../kbuild/build-index.js';
import { OrchestratorError } from '../errors.js';
import { parseDepFile, recompileObject, type RecompiledObject } from './recompile.js';
import { HostRunner, type Runner } from '../runners/runner.js';
import { applyPatches, createSourceView, type AppliedPatch } from './source-view.js';
import { SparseView } from './sparse-view.js';

export interface BuildPatchedObjectsOptions {
  /** The user's kernel source tree; never written. */
  sourceDir: string;
  /** The cached out-of-tree build of that tree (make O=); never written. */
  buildDir: string;
  /** Patch files, applied in order with patch -p1. */
  patches: readonly string[];
  /** Where the source view and the patched objects go; must be on the source tree's filesystem. */
  workDir: string;
  /** Parallel compiles (default 2). */
  jobs?: number;
  runner?: Runner;
  /** An index of buildDir already built (buildIndex), to skip re-reading its .cmd files. */
  index?: BuildIndex;
  extraFlags?: readonly string[];
  extraIncludeDirs?: readonly string[];
  /** A view already made and patched (prepareView), so patches are checked before the original is built. */
  view?: PreparedView;
}

export interface PreparedView {
  viewRoot: string;
  patches: AppliedPatch[];
  /** Set for a sparse view (the default): compiles in it are checked, and redone in a full view when it could differ. Absent: a full hard-link farm. */
  sparse?: SparseView;
}

export interface PrepareViewOptions {
  /** A full hard-link farm of the whole tree (`cp -al`, seconds) instead of the sparse view (milliseconds). */
  full?: boolean;
}

/**
 * The patched source view alone, under workDir/source, with the patches
 * applied: by default a sparse view (sparse-view.ts) holding the touched
 * files and links to the rest; with `full`, a hard-link farm of the tree.
 */
export async function prepareView(
  sourceDir: string,
  workDir: string,
  patchFiles: readonly string[],
  options: PrepareViewOptions = {},
): Promise<PreparedView> {
  const viewRoot = path.join(path.resolve(workDir), 'source');
  if (await exists(viewRoot)) {
    throw new OrchestratorError('ORCH_VIEW_FAILED', `${viewRoot} already exists: use an empty work dir for each build`);
  }
  await mkdir(path.resolve(workDir), { recursive: true });
  if (options.full) {
    await createSourceView(sourceDir, viewRoot);
    return { viewRoot, patches: await applyPatches(viewRoot, patchFiles) };
  }
  const sparse = await SparseView.create(sourceDir, viewRoot);
  return { viewRoot, patches: await sparse.applyPatches(patchFiles), sparse };
}

export interface ObjectPair {
  /** Relative to the build dir, e.g. `fs/proc/cmdline.o`. */
  object: ObjectPath;
  /** Absolute path of the original object in the build dir. */
  original: string;
  /** Absolute path of the recompiled object under workDir. */
  patched: string;
  /** The touched files that made this object change. */
  because: SourcePath[];
  /** gcc/objtool warnings from the recompile, if any. */
  diagnostics: string;
  /**
   * Set when the sparse view could have given this compile other files than a
   * full view would (the file named here): it was compiled again in a full view.
   */
  fullViewBecause?: string;
}

export interface PatchedObjects {
  /** One pair per livepatchable object the patches reach, sorted by object. */
  pairs: ObjectPair[];
  /** Every source-tree path the patches touch, in patch order. */
  touched: SourcePath[];
  /** Touched paths no object of this build uses: if `pairs` is empty too, the patch changes nothing built. */
  outside: SourcePath[];
  /** Touched Makefiles, Kconfig files, syscall tables, linker scripts: their effect is not replayed. */
  buildInputs: SourcePath[];
  /** Objects the patches change but a livepatch cannot carry; not recompiled. */
  notLivepatchable: NotLivepatchableObject[];
  patches: AppliedPatch[];
  /** The patched source view (under workDir). */
  viewRoot: string;
}

/**
 * Kernel tree + its cached build + patches → (original, patched) object pairs,
 * recompiling only the objects the patches reach, with kbuild's own command
 * lines, in a private hard-link view of the tree.
 */
export async function buildPatchedObjects(options: BuildPatchedObjectsOptions): Promise<PatchedObjects> {
  const index = options.index ?? (await buildIndex(options.buildDir));
  if (!(await isSameTree(index, options.sourceDir))) {
    throw new OrchestratorError(
      'ORCH_TREE_MISMATCH',
      `${options.buildDir} was built from ${index.recordedSourceDir}, not from ${options.sourceDir}: pass the source tree the build was made from`,
    );
  }

  const workDir = path.resolve(options.workDir);
  const outDir = path.join(workDir, 'patched');
  const { viewRoot, patches, sparse } = options.view ?? (await prepareView(options.sourceDir, workDir, options.patches));

  const touched = [...new Set(patches.flatMap((p) => p.touched))];
  const affected = affectedObjects(index, touched);

  const runner = options.runner ?? new HostRunner();
  const records = affected.rebuild.map(({ object }) => index.objects.get(object)!);
  if (sparse) await sparse.realizeDotDotDirs(records.flatMap(dotDotPaths), index.recordedSourceDir);

  // Made only if a compile in the sparse view could differ from one in the full view.
  let fullView: Promise<string> | undefined;
  const ensureFullView = (): Promise<string> =>
    (fullView ??= (async () => {
      const root = path.join(workDir, 'source-full');
      await createSourceView(options.sourceDir, root);
      await applyPatches(
        root,
        patches.map((p) => p.patchFile),
      );
      return root;
    })());

  const limit = pLimit(options.jobs ?? 2);
  const pairs = await Promise.all(
    affected.rebuild.map(({ object, because }, i) =>
      limit(async (): Promise<ObjectPair> => {
        const record = records[i]!;
        const original = path.join(index.buildDir, object);
        if (!(await exists(original))) {
          throw new OrchestratorError(
            'ORCH_NOT_A_BUILD_DIR',
            `${original} is missing though its .cmd file is there: finish the original build (make) before building a livepatch`,
          );
        }
        const compile = (root: string): Promise<RecompiledObject> =>
          recompileObject(record, {
            buildDir: index.buildDir,
            recordedSourceDir: index.recordedSourceDir,
            viewRoot: root,
            outDir,
            runner,
            extraFlags: options.extraFlags,
            extraIncludeDirs: options.extraIncludeDirs,
          });
        try {
          let r = await compile(viewRoot);
          let fullViewBecause: string | undefined;
          if (sparse) {
            const deps = await readFile(r.depFile, 'utf8').then(parseDepFile, () => undefined);
            fullViewBecause = deps === undefined ? `no dependency file ${r.depFile}` : await sparse.firstMismatch(deps, index.buildDir);
            if (fullViewBecause !== undefined) r = await compile(await ensureFullView());
          }
          return {
            object,
            original,
            patched: r.output,
            because,
            diagnostics: r.diagnostics,
            ...(fullViewBecause !== undefined ? { fullViewBecause } : {}),
          };
        } catch (e) {
          limit.clearQueue(); // one failed compile fails the build: start no more
          throw e;
        }
      }),
    ),
  );

  return {
    pairs,
    touched,
    outside: affected.outside,
    buildInputs: affected.buildInputs,
    notLivepatchable: affected.notLivepatchable,
    patches,
    viewRoot,
  };
}

/** The tree paths a compile reads or searches that go up with `..` (recorded dependencies, -I dirs and the like). */
function dotDotPaths(record: IndexedObject): string[] {
  const out = record.deps.filter((d) => d.includes('/../'));
  if (record.command.includes('/../'))
    out.push(
      ...record.command
        .split(/[\s'"=,]+/)
        .filter((w) => w.includes('/../'))
        .map((w) => w.replace(/^-[IL]/, '')),
    );
  return out;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
