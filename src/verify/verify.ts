import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { dir } from 'tmp-promise';
import { assertAcceleratorPossible, chooseAccelerator } from './boot/accel.js';
import { parseConsole } from './judge/console-log.js';
import { VerifyError } from './errors.js';
import { evaluate, type VerifyReport } from './judge/evaluate.js';
import { GUEST_PATHS, generateGuestScript, guestModulePath } from './guest/guest-script.js';
import { checkQemu, findBusybox, findGenInitCpio } from './boot/host-tools.js';
import { buildInitramfs, findKernelModules, isSafeGuestPath, type GuestFile } from './boot/initramfs.js';
import { guestCmdline, machineOfModule } from './boot/machines.js';
import { runQemu, type AcceleratorChoice } from './boot/qemu.js';
import { moduleNameFromFile, planSteps } from './guest/steps.js';

export interface VerifyOptions {
  /** The livepatch module to test. */
  readonly module: string;
  /**
   * bzImage to boot, normally BUILD/arch/x86/boot/bzImage (BUILD/arch/s390/boot/bzImage) of the
   * kernel the module was built for. The module's ELF machine picks the QEMU (machines.ts).
   */
  readonly kernel: string;
  /** Shell tests: each must fail before loading, hold while loaded, fail after unloading. */
  readonly checks: readonly string[];
  /** What the report calls each check (its file, for --check-file); default: its text. */
  readonly checkLabels?: readonly (string | undefined)[];
  /** A kernel build directory whose .ko files are placed under /modules in the guest. */
  readonly modulesDir?: string;
  /**
   * Single module files placed under /modules too, at `rel` (`fs/binfmt_misc.ko`):
   * what a check needs of a distribution kernel's thousands of modules.
   */
  readonly moduleFiles?: ReadonlyArray<{ rel: string; file: string }>;
  /** The initramfs packer to use; default: usr/gen_init_cpio of the bzImage's (or --modules') build dir. */
  readonly genInitCpio?: string;
  /** Limit for the whole guest run, boot included. */
  readonly timeoutSeconds: number;
  /** Keep the scratch directory (initramfs, /init, serial log) even when everything passed. */
  readonly keep: boolean;
  readonly accel: AcceleratorChoice;
  /** Per-check limit inside the guest. */
  readonly checkTimeoutSeconds?: number;
  /** How long the guest waits for a (un)patch transition. */
  readonly transitionTimeoutSeconds?: number;
}

const DEFAULT_CHECK_TIMEOUT_S = 30;
const DEFAULT_TRANSITION_TIMEOUT_S = 30;

async function requireFile(p: string, what: string): Promise<void> {
  try {
    if ((await stat(p)).isFile()) return;
  } catch {
    /* reported below */
  }
  throw new VerifyError('VERIFY_INPUT', `${what} ${p} is not a readable file`);
}

/**
 * --check-file: each file's whole text is one check, named by its path in the
 * report. Read here so a missing file is said before anything boots.
 */
export async function readCheckFiles(files: readonly string[]): Promise<Array<{ text: string; label: string }>> {
  return Promise.all(
    files.map(async (f) => {
      try {
        return { text: await readFile(f, 'utf8'), label: f };
      } catch (e) {
        throw new VerifyError('VERIFY_INPUT', `--check-file ${f}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
    }),
  );
}

async function requireDir(p: string, what: string): Promise<void> {
  try {
    if ((await stat(p)).isDirectory()) return;
  } catch {
    /* reported below */
  }
  throw new VerifyError('VERIFY_INPUT', `${what} ${p} is not a directory`);
}

/**
 * Boots the kernel with the module in an initramfs and runs the load /
 * check / unload contract (see steps.ts). Returns the report whether or not
 * the module passed; throws VerifyError only when the test cannot run.
 * The scratch directory is removed after a passing run unless `keep`, and
 * always kept after a failing one so the serial log it names can be read.
 */
export async function verifyModule(o: VerifyOptions): Promise<VerifyReport> {
  await requireFile(o.module, 'module');
  await requireFile(o.kernel, 'kernel image');
  if (o.modulesDir !== undefined) await requireDir(o.modulesDir, '--modules');
  const moduleName = moduleNameFromFile(o.module);
  if (!moduleName) {
    throw new VerifyError(
      'VERIFY_INPUT',
      `${o.module} does not look like a kernel module: expected NAME.ko with NAME made of letters, digits, '_' and '-'`,
    );
  }
  if (!Number.isFinite(o.timeoutSeconds) || o.timeoutSeconds <= 0) {
    throw new VerifyError('VERIFY_INPUT', `--timeout must be a positive number of seconds, not ${o.timeoutSeconds}`);
  }
  o.checks.forEach((c, i) => {
    if (c.includes('\0')) throw new VerifyError('VERIFY_INPUT', `--check ${i + 1} contains a NUL byte`);
  });

  const machine = await machineOfModule(o.module);
  assertAcceleratorPossible(o.accel, machine);
  const busybox = await findBusybox(machine);
  await checkQemu(machine);
  const genInitCpio = o.genInitCpio ?? (await findGenInitCpio(o.kernel, o.modulesDir, machine));

  const plan = planSteps(moduleName, o.checks, o.checkLabels);
  const nonce = randomBytes(6).toString('hex');
  const script = generateGuestScript({
    plan,
    nonce,
    checkTimeoutSeconds: o.checkTimeoutSeconds ?? DEFAULT_CHECK_TIMEOUT_S,
    transitionTimeoutSeconds: o.transitionTimeoutSeconds ?? DEFAULT_TRANSITION_TIMEOUT_S,
  });

  const files: GuestFile[] = [
    { guestPath: '/bin/busybox', source: { file: busybox }, mode: 0o755 },
    { guestPath: '/init', source: { text: script }, mode: 0o755 },
    { guestPath: guestModulePath(moduleName), source: { file: o.module }, mode: 0o644 },
  ];
  if (o.modulesDir !== undefined) {
    for (const rel of await findKernelModules(o.modulesDir)) {
      const guestPath = `${GUEST_PATHS.extraModulesDir}/${rel}`;
      if (!isSafeGuestPath(guestPath)) {
        throw new VerifyError(
          'VERIFY_INPUT',
          `--modules: cannot place ${path.join(o.modulesDir, rel)} in the initramfs (only letters, digits and _.+@- in paths)`,
        );
      }
      files.push({ guestPath, source: { file: path.join(o.modulesDir, rel) }, mode: 0o644 });
    }
  }
  for (const m of o.moduleFiles ?? []) {
    const guestPath = `${GUEST_PATHS.extraModulesDir}/${m.rel}`;
    if (!isSafeGuestPath(guestPath))
      throw new VerifyError(
        'VERIFY_INPUT',
        `cannot place ${m.file} in the initramfs as ${guestPath} (only letters, digits and _.+@- in paths)`,
      );
    await requireFile(m.file, 'module');
    files.push({ guestPath, source: { file: m.file }, mode: 0o644 });
  }

  const work = await dir({ prefix: 'klpforge-verify', unsafeCleanup: true });
  let keepWork = true;
  try {
    const initramfs = path.join(work.path, 'initramfs.cpio.gz');
    const serialLog = path.join(work.path, 'serial.log');
    await buildInitramfs({ genInitCpio, workDir: work.path, files, output: initramfs });
    const accel = await chooseAccelerator(o.accel, { kernel: o.kernel, busybox, genInitCpio, machine });
    const run = await runQemu({
      machine,
      kernel: o.kernel,
      initramfs,
      append: guestCmdline(machine),
      accel,
      timeoutMs: Math.round(o.timeoutSeconds * 1000),
      serialLog,
    });
    const consoleText = await readFile(serialLog, 'utf8').catch(() => '');
    const report = evaluate({
      plan,
      module: o.module,
      kernel: o.kernel,
      console: parseConsole(consoleText, nonce),
      consoleText,
      run: {
        accel,
        timedOut: run.timedOut,
        timeoutSeconds: o.timeoutSeconds,
        qemuExitCode: run.exitCode,
        qemuStderr: run.stderr,
        durationMs: run.durationMs,
        serialLog,
      },
    });
    keepWork = o.keep || !report.ok;
    report.serialLogKept = keepWork;
    return report;
  } finally {
    if (!keepWork) await work.cleanup();
  }
}
