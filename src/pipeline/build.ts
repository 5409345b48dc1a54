import type { RunningCflags } from '../orchestrator/kbuild/machine.js';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { diffObjects, type DiffResult } from '../diff/index.js';
import { parseElf, readElfFile, type ElfObject } from '../elf/index.js';
import { generateModule, type GenerateResult, loadKernelSymbols } from '../klp/index.js';
import {
  type BuildIndex,
  buildIndex,
  buildPatchedObjects,
  objectOwners,
  type ObjectOwner,
  type NotLivepatchableReason,
  type PatchedObjects,
  type PreparedView,
  prepareView,
  recordedCommandBeside,
  HostRunner,
  type Runner,
} from '../orchestrator/index.js';
import { firstMismatch, runningSymbols, type RunningSymbols } from '../orchestrator/checks/running-match.js';
import { recordedObjectOwners } from '../orchestrator/kbuild/object-owner.js';
import { lazyOriginals, type LazyTree } from '../orchestrator/original/lazy-original.js';
import { BuildError } from './errors.js';
import { runningCopies } from './running-copies.js';
import { type ProgressSink, StageClock, type StageTiming } from './stages.js';

export interface LivepatchBuildOptions {
  patches: readonly string[];
  sourceDir: string;
  /** The original kernel, built out of tree with function sections (the cache entry). Only read. */
  originalBuildDir: string;
  index?: BuildIndex;
  /** The patched source view made in preflight (prepareView under WORK/patched); made here when absent. */
  view?: PreparedView;
  /** The running kernel's vmlinux (sympos); default: the original build's. */
  vmlinux?: string;
  /** That vmlinux's bytes, already read (preflight reads it for its checks). */
  vmlinuxBytes?: Buffer;
  /** Where the running kernel's module files are (a build dir or /lib/modules/VER); default: next to vmlinux, else the original build. */
  modulesDir?: string;
  name: string;
  replace: boolean;
  outputDir: string;
  /** Scratch space on the source tree's filesystem (the view hard-links the touched files' siblings). */
  workDir: string;
  jobs: number;
  runner?: Runner;
  extraIncludeDirs?: readonly string[];
  entrySizes?: ReadonlyMap<string, number>;
  progress?: ProgressSink;
  /**
   * The original is a lazy tree (originalBuildDir is its dir): the objects the
   * patch reaches are compiled in it first, and module owners come from their
   * recorded commands and the running kernel's modules.order.
   */
  lazy?: { tree: LazyTree; modulesOrder: string; cacheDir: string };
  /** make variables for modules built against the original tree (CC=, KERNELRELEASE=). */
  makeVars?: readonly string[];
  /** Check each original object against the running kernel's symbols before diffing (default true). */
  matchRunning?: boolean;
  /**
   * The machine's flags that undo klpforge's livepatch flags (machine.ts
   * runningCflags): when given, the match checks copies compiled with them.
   */
  runningCflags?: RunningCflags;
}

export interface ObjectReport {
  object: string;
  owner: string;
  outcome: DiffResult['outcome'];
  changed: string[];
  new: string[];
  lineOnly: string[];
  /** New static functions no changed function calls: not in the module. */
  leftOut: string[];
  warnings: string[];
}

export interface LivepatchBuildReport {
  module: string;
  objects: ObjectReport[];
  functions: GenerateResult['objects'];
  klpRelocations: GenerateResult['klpRelocations'];
  warnings: string[];
  stages: StageTiming[];
}

/**
 * The whole job after the original build exists: patch a private view of the
 * source, recompile what the patch reaches, diff each object, generate the
 * livepatch. Every refusal is collected and reported together.
 */
export async function buildLivepatch(o: LivepatchBuildOptions): Promise<LivepatchBuildReport> {
  const clock = new StageClock(o.progress ?? (() => {}));
  await mkdir(o.workDir, { recursive: true });
  const runner = o.runner ?? new HostRunner();
  let view = o.view;
  let index: BuildIndex;
  let owners: Promise<(object: string) => ObjectOwner>;
  if (o.lazy) {
    const lazy = o.lazy;
    const made = (view ??= await prepareView(o.sourceDir, path.join(o.workDir, 'patched'), o.patches));
    const touched = [...new Set(made.patches.flatMap((p) => p.touched))];
    const originals = await clock.run(
      'originals',
      () => lazyOriginals(lazy.tree, touched, { runner, jobs: o.jobs, cacheDir: lazy.cacheDir }),
      (r) => `${r.compiled} compiled, ${r.index.objects.size} in the lazy tree`,
    );
    index = originals.index;
    owners = recordedObjectOwners(index, lazy.modulesOrder);
  } else {
    index = o.index ?? (await buildIndex(o.originalBuildDir));
    owners = objectOwners(o.originalBuildDir);
  }

  const vmlinux = o.vmlinux ?? path.join(o.originalBuildDir, 'vmlinux');
  const modulesDir = o.modulesDir ?? (o.vmlinux ? path.dirname(o.vmlinux) : o.originalBuildDir);
  // Neither depends on the patch: read them while the compiles run. The symbol index (~0.4 s of this
  // process's time for a vmlinux) is built once the first compile has started, so it does not delay it.
  const firstCommand = deferred();
  const patchedRun = clock.run(
    'patched',
    () =>
      buildPatchedObjects({
        sourceDir: o.sourceDir,
        buildDir: o.originalBuildDir,
        patches: o.patches,
        workDir: path.join(o.workDir, 'patched'),
        jobs: o.jobs,
        index,
        runner: {
          run: (argv, opts) => {
            const r = runner.run(argv, opts);
            firstCommand.resolve();
            return r;
          },
        },
        ...(o.extraIncludeDirs ? { extraIncludeDirs: o.extraIncludeDirs } : {}),
        ...(view ? { view } : {}),
      }),
    (p) => `${p.pairs.length} object(s) recompiled`,
  );
  const kernel = Promise.race([firstCommand.promise, patchedRun]).then(() =>
    loadKernelSymbols(o.originalBuildDir, vmlinux, o.vmlinuxBytes),
  );
  for (const p of [owners, kernel]) p.catch(() => {}); // awaited below; a failed compile must not leave them unhandled
  const patched = await patchedRun;
  checkReach(patched);

  const ownerOf = await owners;
  if (o.matchRunning !== false) {
    const bytes = o.vmlinuxBytes;
    await clock.run(
      'match',
      async () => {
        const flags = o.runningCflags;
        const copies =
          flags === undefined || flags.vmlinux.length + flags.module.length === 0
            ? undefined
            : await runningCopies(patched.pairs, {
                index,
                flags,
                ownerOf,
                outDir: path.join(o.workDir, 'running-copies'),
                runner,
                jobs: o.jobs,
              });
        return checkRunningMatch(
          patched,
          ownerOf,
          bytes ? Promise.resolve(parseElf(bytes, vmlinux)) : readElfFile(vmlinux),
          (ko) => path.join(modulesDir, ko),
          copies,
        );
      },
      (n) => `${n} object(s) match the running kernel`,
    );
  }
  const limit = pLimit(o.jobs);
  const diffs = await clock.run(
    'diff',
    () =>
      Promise.all(
        patched.pairs.map((pair) =>
          limit(async () => {
            const [orig, pat, flags] = await Promise.all([
              readElfFile(pair.original),
              readElfFile(pair.patched),
              recordedCommandBeside(pair.original),
            ]);
            const result = diffObjects(orig, pat, {
              compilerFlags: flags,
              output: true,
              ...(o.entrySizes ? { entrySizes: o.entrySizes } : {}),
            });
            return { pair, result, owner: ownerOf(pair.object) };
          }),
        ),
      ),
    (d) => `${d.filter((x) => x.result.outcome === 'changed').length} of ${d.length} object(s) changed`,
  );

  const objects: ObjectReport[] = diffs.map(({ pair, result, owner }) => ({
    object: pair.object,
    owner: ownerName(owner),
    outcome: result.outcome,
    changed: result.changed.map((f) => f.name),
    new: result.new.map((f) => f.name),
    lineOnly: result.lineOnly,
    leftOut: result.leftOut,
    warnings: [...result.warnings, ...(pair.diagnostics ? [pair.diagnostics.trim()] : [])],
  }));
  const refused = diffs.flatMap(({ pair, result }) =>
    result.refusals.map((r) => ({ code: r.code, object: pair.object, message: r.message })),
  );
  if (refused.length > 0) throw new BuildError('BUILD_REFUSED', 'the patch changes things a livepatch cannot carry:', 2, refused);
  const changed = diffs.filter((d) => d.result.outcome === 'changed');
  if (changed.length === 0) {
    const lines = diffs.flatMap(({ pair, result }) =>
      result.lineOnly.map((f) => ({ code: 'LINE_ONLY', object: pair.object, message: `${f}: only __LINE__ values moved` })),
    );
    throw new BuildError(
      'BUILD_NO_CHANGE',
      `no function changed in ${diffs.map((d) => d.pair.object).join(', ')}: nothing to livepatch`,
      3,
      lines,
    );
  }

  const generated = await clock.run(
    'generate',
    () =>
      generateModule({
        objects: changed.map((d) => ({ object: d.pair.object, owner: d.owner, output: d.result.output! })),
        buildDir: o.originalBuildDir,
        vmlinux,
        kernel,
        moduleFile: (ko) => path.join(modulesDir, ko),
        name: o.name,
        replace: o.replace,
        workDir: path.join(o.workDir, 'generate'),
        outputDir: o.outputDir,
        jobs: o.jobs,
        runner,
        ...(o.entrySizes ? { entrySizes: o.entrySizes } : {}),
        ...(o.makeVars ? { makeVars: o.makeVars } : {}),
      }),
    (g) => path.basename(g.ko),
  );

  return {
    module: generated.ko,
    objects,
    functions: generated.objects,
    klpRelocations: generated.klpRelocations,
    warnings: [...objects.flatMap((x) => x.warnings.map((w) => `${x.object}: ${w}`)), ...generated.warnings],
    stages: clock.timings,
  };
}

/**
 * Every original object against the running kernel (orchestrator/checks/running-match.ts):
 * the first function that differs stops the build, naming it. Returns how many objects were checked.
 */
async function checkRunningMatch(
  p: PatchedObjects,
  ownerOf: (object: string) => ObjectOwner,
  vmlinuxElf: Promise<ElfObject>,
  moduleFile: (ko: string) => string,
  copies?: ReadonlyMap<string, string>,
): Promise<number> {
  const running = new Map<string, Promise<RunningSymbols>>();
  const symbolsOf = (owner: ObjectOwner): Promise<RunningSymbols> => {
    const key = owner.kind === 'vmlinux' ? 'vmlinux' : owner.ko;
    let r = running.get(key);
    if (!r) {
      r =
        owner.kind === 'vmlinux'
          ? vmlinuxElf.then((e) => runningSymbols(e, 'vmlinux'))
          : readElfFile(moduleFile(owner.ko)).then(
              (e) => runningSymbols(e, owner.ko),
              () => {
                throw new BuildError(
                  'BUILD_INPUT',
                  `${moduleFile(owner.ko)}: the running kernel's ${owner.name} module is not there to check the original objects against: pass the directory of the running kernel's modules`,
                  1,
                );
              },
            );
      running.set(key, r);
    }
    return r;
  };
  for (const pair of p.pairs) {
    const [obj, symbols] = await Promise.all([readElfFile(copies?.get(pair.object) ?? pair.original), symbolsOf(ownerOf(pair.object))]);
    const problem = firstMismatch(obj, pair.object, symbols);
    if (problem) throw new BuildError('BUILD_ORIGINAL_MISMATCH', problem.message, 1);
  }
  return p.pairs.length;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function ownerName(owner: ObjectOwner): string {
  return owner.kind === 'vmlinux' ? 'vmlinux' : owner.name;
}

const NOT_LIVEPATCHABLE: Record<NotLivepatchableReason, string> = {
  assembly: 'assembly has no ftrace entry to redirect: move the fix into C, or rebuild and reboot',
  vdso: 'the vDSO runs in user space, mapped into processes: a livepatch cannot reach it; rebuild and reboot',
  boot: 'boot and decompressor code is gone once the kernel runs: the change needs a reboot',
  realmode: 'the real-mode trampoline is copied below 1 MiB at boot: the change needs a reboot',
  purgatory: 'kexec purgatory runs between kernels: a livepatch cannot reach it',
  'host-tool': 'a build-host tool, not kernel code: it does not run in the kernel',
  'modpost-glue': 'module glue modpost generates (.mod.c): not patch material',
};

/** A patch that reaches no livepatchable object is an input problem, said before any diffing. */
function checkReach(p: PatchedObjects): void {
  if (p.notLivepatchable.length > 0) {
    throw new BuildError(
      'BUILD_REFUSED',
      'the patch changes code a livepatch cannot replace:',
      2,
      p.notLivepatchable.map((n) => ({ code: 'NOT_LIVEPATCHABLE', object: n.object, message: NOT_LIVEPATCHABLE[n.reason] })),
    );
  }
  if (p.pairs.length === 0) {
    const message =
      p.buildInputs.length > 0
        ? `the patch only touches build files (${p.buildInputs.join(', ')}): nothing to livepatch; changes to how the kernel is built need a rebuild and reboot`
        : `the patch only touches files no object of this kernel build uses (${p.outside.join(', ')}): nothing to livepatch; if the running kernel builds them, pass its .config with -c`;
    throw new BuildError('BUILD_NOTHING_BUILT', message, 3);
  }
}
