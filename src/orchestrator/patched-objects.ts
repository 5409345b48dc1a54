import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { affectedObjects, type NotLivepatchableObject } from './affected.js';
import { buildIndex, isSameTree, type BuildIndex, type ObjectPath, type SourcePath } from './build-index.js';
import { OrchestratorError } from './errors.js';
import { recompileObject } from './recompile.js';
import { HostRunner, type Runner } from './runner.js';
import { applyPatches, createSourceView, type AppliedPatch } from './source-view.js';

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

export interface PreparedView { viewRoot: string; patches: AppliedPatch[] }

/** The patched source view alone: a hard-link farm of sourceDir under workDir/source with the patches applied. */
export async function prepareView(sourceDir: string, workDir: string, patchFiles: readonly string[]): Promise<PreparedView> {
  const viewRoot = path.join(path.resolve(workDir), 'source');
  if (await exists(viewRoot)) {
    throw new OrchestratorError('ORCH_VIEW_FAILED', `${viewRoot} already exists: use an empty work dir for each build`);
  }
  await mkdir(path.resolve(workDir), { recursive: true });
  await createSourceView(sourceDir, viewRoot);
  return { viewRoot, patches: await applyPatches(viewRoot, patchFiles) };
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
  const index = options.index ?? await buildIndex(options.buildDir);
  if (!(await isSameTree(index, options.sourceDir))) {
    throw new OrchestratorError('ORCH_TREE_MISMATCH',
      `${options.buildDir} was built from ${index.recordedSourceDir}, not from ${options.sourceDir}: pass the source tree the build was made from`);
  }

  const workDir = path.resolve(options.workDir);
  const outDir = path.join(workDir, 'patched');
  const { viewRoot, patches } = options.view ?? await prepareView(options.sourceDir, workDir, options.patches);

  const touched = [...new Set(patches.flatMap((p) => p.touched))];
  const affected = affectedObjects(index, touched);

  const runner = options.runner ?? new HostRunner();
  const limit = pLimit(options.jobs ?? 2);
  const pairs = await Promise.all(affected.rebuild.map(({ object, because }) => limit(async (): Promise<ObjectPair> => {
    const record = index.objects.get(object)!;
    const original = path.join(index.buildDir, object);
    if (!(await exists(original))) {
      throw new OrchestratorError('ORCH_NOT_A_BUILD_DIR',
        `${original} is missing though its .cmd file is there: finish the original build (make) before building a livepatch`);
    }
    const r = await recompileObject(record, {
      buildDir: index.buildDir, recordedSourceDir: index.recordedSourceDir, viewRoot, outDir, runner,
      extraFlags: options.extraFlags, extraIncludeDirs: options.extraIncludeDirs,
    }).catch((e: unknown) => {
      limit.clearQueue(); // one failed compile fails the build: start no more
      throw e;
    });
    return { object, original, patched: r.output, because, diagnostics: r.diagnostics };
  })));

  return {
    pairs, touched, outside: affected.outside, buildInputs: affected.buildInputs,
    notLivepatchable: affected.notLivepatchable, patches, viewRoot,
  };
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
