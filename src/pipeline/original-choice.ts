import path from 'node:path';
import type { RunningCflags } from '../orchestrator/kbuild/machine.js';
import type { PreparedView, Runner } from '../orchestrator/index.js';
import { isKlpforgeError } from '../util/errors.js';
import { buildLivepatch, type LivepatchBuildReport } from './build.js';
import { BuildError } from './errors.js';
import { lazyOriginal } from './lazy.js';
import { buildOotLivepatch } from './oot-module.js';
import { type OriginalChoice, originalBuild } from './original.js';
import { onOriginal, type Speculation } from './speculate.js';
import type { ProgressSink, StageClock } from './stages.js';

/** What `klpforge build` runs the patched side with, whichever original it gets. */
export interface OriginalChoiceOptions {
  patches: readonly string[];
  sourceDir: string;
  configFile: string;
  cacheDir: string;
  /** The lazy original, or the full one; `chosen` when klpforge picked it (then a header the lazy one cannot serve falls back to full). */
  original: 'lazy' | 'full';
  chosen: boolean;
  name: string;
  replace: boolean;
  jobs: number;
  /** The work dir: each attempt gets its own scratch dir in it. */
  workDir: string;
  extraIncludeDirs: readonly string[];
  /** From preflight. */
  view?: PreparedView;
  vmlinuxBytes?: Buffer;
  /** The running kernel (hand targets and Debian kernels). */
  vmlinux?: string;
  modulesDir?: string;
  modulesOrder?: string;
  symvers?: string;
  makeVars: readonly string[];
  cc?: string;
  runningCflags: RunningCflags;
  /** --oot-module: the full original only. */
  oot?: { module: string; source: string };
  runner: Runner;
  /** The runner an attempt against `buildDir` uses: a sandbox must see that build, wherever it is. */
  runnerFor: (buildDir: string) => Runner;
  /** likelyOriginal(), started while the checks ran. */
  likely: Promise<OriginalChoice | undefined>;
  clock: StageClock;
  progress: ProgressSink;
  /** True once the build is being stopped: nothing new may start writing into the work dir. */
  interrupted: () => boolean;
  onWait: (pid: number) => void;
  note: (line: string) => void;
}

export interface OriginalRun {
  original: { key: string; buildDir: string; hit: boolean; warnings: string[]; mode: 'lazy' | 'full' };
  result: LivepatchBuildReport;
  speculation: Speculation;
}

/**
 * The original `klpforge build` runs against and the patched side on it:
 * the lazy original (compile only what the patch reaches in a prepared
 * tree) or the full one (the cached function-sections build, guessed while
 * its key is computed). When klpforge chose lazy and a header reaches more
 * than it serves, it says so and builds the full original instead.
 */
export async function runOnOriginal(o: OriginalChoiceOptions): Promise<OriginalRun> {
  if (o.original === 'full') return fullOriginal(o);
  return lazyRun(o).catch(async (e: unknown) => {
    if (!o.chosen || !isKlpforgeError(e) || e.code !== 'LAZY_TOO_MANY_OBJECTS') throw e;
    o.note(`note: ${e.message.replace(/ is the way: --original full, or .*$/, '')}: building the full original instead`);
    return fullOriginal(o);
  });
}

/** The patched side's options that do not depend on the original. */
function common(o: OriginalChoiceOptions, scratch: string) {
  return {
    patches: o.patches,
    name: o.name,
    replace: o.replace,
    outputDir: path.join(scratch, 'out'),
    workDir: scratch,
    jobs: o.jobs,
    extraIncludeDirs: o.extraIncludeDirs,
  };
}

/** What buildLivepatch needs of the running kernel and the preflight, for either original. */
function running(o: OriginalChoiceOptions) {
  return {
    sourceDir: o.sourceDir,
    view: o.view,
    makeVars: o.makeVars,
    runningCflags: o.runningCflags,
    ...(o.vmlinux ? { vmlinux: o.vmlinux } : {}),
    ...(o.vmlinuxBytes ? { vmlinuxBytes: o.vmlinuxBytes } : {}),
  };
}

async function fullOriginal(o: OriginalChoiceOptions): Promise<OriginalRun> {
  const options = {
    sourceDir: o.sourceDir,
    configFile: o.configFile,
    cacheDir: o.cacheDir,
    runner: o.runner,
    jobs: o.jobs,
    workDir: o.workDir,
    onWait: o.onWait,
    // A cross kernel is built for its machine, with its livepatch flags (machine.ts), as the lazy tree is.
    makeVars: o.makeVars,
    ...(o.cc ? { cc: o.cc } : {}),
  };
  const actual = o.clock.run(
    'original',
    (report) => originalBuild({ ...options, onProgress: (p) => report({ progress: p }) }, o.likely),
    (r) => (r.hit ? `cached ${r.buildDir}` : `built ${r.buildDir}`),
  );
  const r = await onOriginal({
    likely: o.likely,
    actual,
    progress: o.progress,
    work: (original, attempt) => {
      if (o.interrupted()) return Promise.reject(new Error('interrupted')); // start nothing that would write into the work dir being removed
      // Each attempt builds in its own scratch dir; only the one that counts is published to the output dir.
      const scratch = path.join(o.workDir, attempt.name);
      const runner = o.runnerFor(original.buildDir);
      return o.oot
        ? buildOotLivepatch({
            ...common(o, scratch),
            ootSource: o.oot.source,
            ootModule: o.oot.module,
            kernelBuildDir: original.buildDir,
            vmlinux: o.vmlinux ?? path.join(original.buildDir, 'vmlinux'),
            runner,
            entrySizes: original.entrySizes,
            progress: attempt.progress,
          })
        : buildLivepatch({
            ...common(o, scratch),
            ...running(o),
            originalBuildDir: original.buildDir,
            index: original.index,
            runner,
            entrySizes: original.entrySizes,
            progress: attempt.progress,
          });
    },
  });
  return { ...r, original: { ...r.original, mode: 'full' } };
}

async function lazyRun(o: OriginalChoiceOptions): Promise<OriginalRun> {
  if (o.oot)
    throw new BuildError(
      'BUILD_INPUT',
      '--oot-module needs the full original (--original full): an out-of-tree module builds against a complete kernel tree',
      1,
    );
  const lo = await o.clock.run(
    'original',
    () =>
      lazyOriginal({
        sourceDir: o.sourceDir,
        config: o.configFile,
        cacheDir: o.cacheDir,
        runner: o.runner,
        jobs: o.jobs,
        makeVars: o.makeVars,
        ...(o.cc ? { cc: o.cc } : {}),
        symvers: o.symvers!,
        workDir: o.workDir,
        onWait: o.onWait,
      }),
    (l) => `lazy tree ${l.tree.hit ? 'cached' : 'prepared'}: ${l.tree.buildDir}`,
  );
  // The prepared tree is under CACHE/prepared, writable in a sandbox (its original objects are compiled in it).
  const result = await buildLivepatch({
    ...common(o, path.join(o.workDir, 'lazy')),
    ...running(o),
    originalBuildDir: lo.tree.buildDir,
    lazy: { tree: lo.tree, modulesOrder: o.modulesOrder!, cacheDir: o.cacheDir },
    ...(o.modulesDir ? { modulesDir: o.modulesDir } : {}),
    runner: o.runner,
    entrySizes: lo.entrySizes,
    progress: o.progress,
  });
  return {
    original: { key: lo.tree.key, buildDir: lo.tree.buildDir, hit: lo.tree.hit, warnings: lo.warnings, mode: 'lazy' },
    result,
    speculation: 'none',
  };
}
