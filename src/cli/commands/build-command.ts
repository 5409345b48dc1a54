import { mkdir, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { GeneratorError } from '../../klp/index.js';
import type { LivepatchBuildReport } from '../../pipeline/build.js';
import { BuildError } from '../../pipeline/errors.js';
import { likelyOriginal } from '../../pipeline/original.js';
import { runOnOriginal } from '../../pipeline/original-choice.js';
import { publishModule } from '../../pipeline/publish.js';
import { type BuildTarget, resolveTarget } from '../build/build-target.js';
import { modulesWithDependencies } from '../../orchestrator/acquire/kernel-modules.js';
import { runningCflagsOf } from '../../orchestrator/kbuild/machine.js';
import { preflight } from '../../pipeline/preflight.js';
import { StageClock, type StageEvent, type StageTiming } from '../../pipeline/stages.js';
import { createRunner, type RunnerKind } from '../../orchestrator/runners/create-runner.js';
import { type Runner, runnerSeeing } from '../../orchestrator/index.js';
import { tagChildProcesses } from '../../orchestrator/runners/orphans.js';
import { isKlpforgeError } from '../../util/errors.js';
import { formatReport } from '../../verify/judge/report.js';
import { readCheckFiles, verifyModule } from '../../verify/verify.js';
import { EXIT } from '../exit-codes.js';
import { BATCH_PARENT_VAR } from '../../pipeline/batch/job.js';
import {
  diskFullError,
  keepNamedLogs,
  makeWorkDir,
  removeUntilGone,
  SignalGuard,
  stopWithParent,
  type WrittenPlace,
} from '../build/build-safety.js';
import { progressPrinter, STAGE_LABEL } from '../build/progress.js';

// Moved to options/build.ts, where main.ts reads them without loading this module; still exported here for older imports.
export { BUILD_DESCRIPTION, BUILD_EPILOGUE, buildBuilder } from '../options/build.js';

const KERNEL_HEADERS = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../../kernel-headers');

export interface BuildCommandArgs {
  patches: string[];
  sourcedir?: string;
  config?: string;
  vmlinux?: string;
  jobs: number;
  target: string[];
  name?: string;
  output: string;
  debug: boolean;
  nonReplace: boolean;
  skipCleanup: boolean;
  skipCompilerCheck: boolean;
  ootModule?: string;
  ootModuleSrc?: string;
  archversion?: string;
  runner: RunnerKind;
  image?: string;
  rootfs?: string;
  cacheDir: string;
  json: boolean;
  verify: boolean;
  kernel?: string;
  original?: 'lazy' | 'full';
  check: string[];
  checkFile: string[];
}

/** Module names end up in /sys/kernel/livepatch/ and MODULE_NAME_LEN (56) with the livepatch- prefix. */
export function moduleName(given: string | undefined, firstPatch: string): string {
  const raw = given ?? path.basename(firstPatch).replace(/\.(patch|diff)$/, '');
  const name = raw.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 45);
  if (name === '' || /^-+$/.test(name))
    throw new BuildError('BUILD_INPUT', `cannot make a module name of "${raw}": pass -n/--name with letters, digits, - or _`, 1);
  return name;
}

/** `klpforge build`: the whole job; returns the exit code. */
export async function buildCommand(a: BuildCommandArgs, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  if ((a.ootModule === undefined) !== (a.ootModuleSrc === undefined)) {
    throw new BuildError(
      'BUILD_INPUT',
      '--oot-module and --oot-module-src go together: the running module (.ko) and the source it was built from',
      1,
    );
  }
  const oot = a.ootModule !== undefined ? { module: path.resolve(a.ootModule), source: path.resolve(a.ootModuleSrc!) } : undefined;
  const name = moduleName(a.name, a.patches[0]!);
  // Read now: a missing --check-file is said before minutes of building, not after.
  const checkFiles = await readCheckFiles(a.verify ? a.checkFile : []);
  const outputDir = path.resolve(a.output);
  const keep = a.debug || a.skipCleanup;
  const events: StageEvent[] = [];
  const stages: StageTiming[] = [];
  let workDir: string | undefined;
  /** The work dir being made: a signal that lands while mkdtemp runs must still find (and remove) it. */
  let makingWorkDir: Promise<string> | undefined;
  let removing: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    // The user's tree was never written; only the scratch dir needs to go (once, whoever asks first).
    removing ??=
      keep || workDir === undefined ? Promise.resolve() : rm(workDir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    return removing;
  };
  const guard = new SignalGuard(async (signal, exitCode) => {
    if (workDir === undefined && makingWorkDir !== undefined) workDir = await makingWorkDir.catch(() => undefined);
    await cleanup();
    // The pipeline's code is still unwinding (its commands were stopped, not its file writes): remove until it stays gone.
    if (!keep && workDir !== undefined) await removeUntilGone(workDir);
    const where = keep && workDir ? `work dir kept: ${workDir}` : 'work dir removed';
    const message = `interrupted by ${signal}: stopped (${where}); the source tree was not written and the cache keeps no partial entry`;
    if (a.json)
      out(
        JSON.stringify(
          { ok: false, error: { code: 'BUILD_INTERRUPTED', message, exitCode, reasons: [] }, stages: [...stages, ...clock.timings] },
          null,
          2,
        ),
      );
    err(`klpforge: ${message}`);
  });
  const progress = a.json ? () => {} : progressPrinter(process.stderr);
  const sink = (e: StageEvent) => {
    if (guard.interrupted) return; // the children were killed on purpose: their stages did not fail
    events.push(e);
    progress(e);
  };
  const clock = new StageClock(sink);
  guard.install();
  const unwatch = stopWithParent(process.env[BATCH_PARENT_VAR]);
  await tagChildProcesses(); // so a later run can stop what this one leaves running if it is killed
  let report: LivepatchBuildReport | undefined;
  let target: BuildTarget | undefined;
  try {
    target = await resolveTarget({ ...a, cacheDir: a.cacheDir, outOfTree: oot !== undefined }, clock, (line) => err(`klpforge: ${line}`));
    const { sourceDir, configFile } = target;
    const t = target;
    makingWorkDir = makeWorkDir(a.cacheDir, sourceDir, keep);
    workDir = await makingWorkDir;
    // Inside a sandbox only the work dir and the cache's builds, prepared (lazy) trees and logs (make O= and its log) are writable:
    // the rest of the cache (the rootfs the sandbox runs on, the entries, the locks) is klpforge's own to write.
    // The cache is used by its real path (make O= names it so); bound as given too, where the work dir is.
    const cacheDirs =
      a.runner === 'host' ? [] : [...new Set([a.cacheDir, await mkdir(a.cacheDir, { recursive: true }).then(() => realpath(a.cacheDir))])];
    const cacheWritable =
      cacheDirs.length === 0 ? [] : ['builds', 'logs', 'prepared'].map((d) => path.join(cacheDirs[cacheDirs.length - 1]!, d));
    await Promise.all(cacheWritable.map((d) => mkdir(d, { recursive: true })));
    const inner = await createRunner({
      kind: a.runner,
      ...(a.image ? { image: a.image } : {}),
      ...(a.rootfs ? { rootfs: a.rootfs } : {}),
      rootfsCacheDir: path.join(a.cacheDir, 'rootfs'),
      readOnly: [sourceDir, KERNEL_HEADERS, ...cacheDirs, ...(oot ? [oot.source] : [])],
      writable: [workDir, ...cacheWritable],
      onProgress: (line) => err(`klpforge: ${line}`),
    });
    const watched = (r: Runner): Runner => ({
      run: (argv, opts) => {
        if (guard.interrupted) return Promise.reject(new Error('interrupted')); // start nothing new while stopping
        if (a.debug) err(`klpforge: $ (cd ${opts.cwd} && ${argv.join(' ')})`);
        return r.run(argv, opts);
      },
      ...(r.seeing ? { seeing: (readOnly: readonly string[]) => watched(runnerSeeing(r, readOnly)) } : {}),
    });
    const runner = watched(inner);
    const work = workDir;
    // Read while the checks run (it only reads the cache). An out-of-tree module's build waits for the real entry (it is quick anyway).
    const likely =
      oot || (t.original === 'lazy' && !t.chosen)
        ? Promise.resolve(undefined)
        : likelyOriginal({ sourceDir, configFile, cacheDir: a.cacheDir });
    const checked = await clock.run(
      'preflight',
      () =>
        preflight({
          sourceDir,
          configFile,
          patches: a.patches.map((p) => path.resolve(p)),
          patchedWorkDir: path.join(work, 'patched'),
          compilerWorkDir: work,
          runner,
          skipCompilerCheck: a.skipCompilerCheck,
          ...(t.vmlinux ? { vmlinux: t.vmlinux } : {}),
          ...(a.archversion ? { archversion: a.archversion } : {}),
          ...(t.release ? { release: t.release } : {}),
          ...(t.cc ? { cc: t.cc } : {}),
          outOfTree: oot !== undefined,
        }),
      (c) => (c.view ? `${c.view.patches.length} patch(es) apply` : 'config and kernel checked'),
    );
    for (const w of checked.warnings) err(`klpforge: warning: ${w}`);
    const ran = await runOnOriginal({
      patches: a.patches,
      sourceDir,
      configFile,
      cacheDir: a.cacheDir,
      original: t.original,
      chosen: t.chosen,
      name,
      replace: !a.nonReplace,
      jobs: a.jobs,
      workDir: work,
      extraIncludeDirs: [KERNEL_HEADERS],
      ...(checked.view ? { view: checked.view } : {}),
      ...(checked.vmlinuxBytes ? { vmlinuxBytes: checked.vmlinuxBytes } : {}),
      ...(t.vmlinux ? { vmlinux: t.vmlinux } : {}),
      ...(t.modulesDir ? { modulesDir: t.modulesDir } : {}),
      ...(t.modulesOrder ? { modulesOrder: t.modulesOrder } : {}),
      ...(t.symvers ? { symvers: t.symvers } : {}),
      makeVars: t.makeVars,
      ...(t.cc ? { cc: t.cc } : {}),
      runningCflags: runningCflagsOf(t.machine),
      ...(oot ? { oot } : {}),
      runner,
      runnerFor: (buildDir) => runnerSeeing(watched(inner), [buildDir]),
      likely,
      clock,
      progress: sink,
      interrupted: () => guard.interrupted !== undefined,
      onWait: (pid) => err(`klpforge: waiting for process ${pid}, which is building the same original kernel`),
      note: (line) => err(`klpforge: ${line}`),
    });
    const original = ran.original;
    for (const w of original.warnings) err(`klpforge: warning: ${w}`);
    if (ran.speculation === 'discarded')
      err(
        `klpforge: note: the newest cached original build of this tree no longer matches it; the patched side was built again against ${original.buildDir}`,
      );
    report = { ...ran.result, module: await publishModule(ran.result.module, outputDir) };
    const originalReport = {
      mode: original.mode,
      key: original.key,
      buildDir: original.buildDir,
      hit: original.hit,
      speculation: ran.speculation,
      ...(t.debian ? { kernel: { release: t.debian.release, version: t.debian.version, image: t.debian.imagePackage } } : {}),
    };
    stages.push(...clock.timings, ...report.stages);
    if (guard.interrupted) return await guard.wait();
    if (!a.json) {
      for (const w of report.warnings) err(`klpforge: warning: ${w}`);
      for (const o of report.functions)
        for (const f of o.functions) out(`patched ${o.objname}:${f.oldName}${f.sympos ? `,${f.sympos}` : ''} (${o.object})`);
      out(report.module);
    }
    let verified: boolean | undefined;
    let verifyFailures: readonly string[] = [];
    if (a.verify) {
      const kernel =
        t.bootImage ?? a.kernel ?? path.join(path.dirname(t.vmlinux ?? path.join(original.buildDir, 'vmlinux')), t.machine.bootImage);
      // A distribution kernel's modules are thousands: the guest gets the ones the livepatch patches.
      const patchedModules = [...new Set(report.functions.map((f) => f.objname).filter((n) => n !== 'vmlinux'))];
      const moduleFiles = t.debian && patchedModules.length > 0 ? await modulesWithDependencies(t.debian.modulesDir, patchedModules) : [];
      const vr = await clock.run(
        'verify',
        () =>
          verifyModule({
            moduleFiles,
            module: report!.module,
            kernel,
            ...(t.debian ? { genInitCpio: t.debian.genInitCpio } : {}),
            checks: [...a.check, ...checkFiles.map((f) => f.text)],
            checkLabels: [...a.check.map(() => undefined), ...checkFiles.map((f) => f.label)],
            ...(t.debian ? {} : { modulesDir: path.dirname(t.vmlinux ?? path.join(original.buildDir, 'vmlinux')) }),
            timeoutSeconds: 120,
            keep: false,
            accel: 'auto',
          }),
        (r) => (r.ok ? 'passed' : 'FAILED'),
      );
      stages.push(clock.timings[clock.timings.length - 1]!);
      verified = vr.ok;
      verifyFailures = vr.failures;
      if (!a.json) for (const l of formatReport(vr)) err(l);
    }
    if (a.json)
      out(
        JSON.stringify(
          {
            ok: verified !== false,
            ...report,
            original: originalReport,
            stages,
            ...(verified !== undefined ? { verified } : {}),
            ...(verified === false ? { verifyFailures } : {}),
          },
          null,
          2,
        ),
      );
    return verified === false ? EXIT.ERROR : EXIT.OK;
  } catch (caught) {
    if (guard.interrupted) return await guard.wait(); // whatever failed, failed because it was stopped
    const failed = [...events].reverse().find((ev) => ev.state === 'failed' || ev.state === 'start');
    const places: WrittenPlace[] = [
      ...(workDir
        ? [
            {
              dir: path.dirname(workDir),
              what: 'the work dir',
              remedy: "free space there (the work dir has to be on the source tree's filesystem)",
            },
          ]
        : []),
      { dir: outputDir, what: 'the output dir', remedy: 'free space there or pass another -o/--output' },
      { dir: a.cacheDir, what: 'the cache dir', remedy: 'free space there or pass another --cache-dir' },
    ];
    const e = (await diskFullError(caught, places, failed ? STAGE_LABEL[failed.stage] : undefined)) ?? caught;
    if (workDir && !keep) await keepNamedLogs(e, workDir, path.join(a.cacheDir, 'logs'));
    if (a.json && isKlpforgeError(e)) {
      const reasons = e instanceof BuildError ? e.reasons : e instanceof GeneratorError ? e.problems : [];
      out(
        JSON.stringify(
          { ok: false, error: { code: e.code, message: e.message, exitCode: e.exitCode, reasons }, stages: [...stages, ...clock.timings] },
          null,
          2,
        ),
      );
    }
    throw e;
  } finally {
    if (guard.interrupted) await guard.wait();
    unwatch();
    guard.uninstall();
    if (keep && workDir) err(`klpforge: work dir kept: ${workDir}`);
    await cleanup();
  }
}
