import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { ensureDebianKernel, parseDebianKernel } from '../orchestrator/acquire/debian-kernel.js';
import { modulesWithDependencies } from '../orchestrator/acquire/kernel-modules.js';
import { VerifyError } from '../verify/errors.js';
import type { AcceleratorChoice } from '../verify/qemu.js';
import { failureSummary, formatReport, reportJson } from '../verify/report.js';
import { readCheckFiles, verifyModule } from '../verify/verify.js';
import { EXIT } from './exit-codes.js';

export const VERIFY_DESCRIPTION = 'boot a kernel in QEMU and prove a livepatch module loads, works, and unloads cleanly';

// One paragraph per entry: yargs wraps each to the terminal width.
export const VERIFY_EPILOGUE = [
  'In the guest, in order: each --check must fail; insmod the module; its transition ends and the patch is enabled; ' +
    'each --check must hold; the patch is disabled and rmmod-ed; each --check must fail again. The kernel log must show ' +
    'no WARNING, Oops, BUG or Call Trace, and no taint besides K (livepatch) and O (out-of-tree).',
  'Checks run with busybox sh in / (30 s limit each); with --modules DIR, DIR/x/y.ko is at /modules/x/y.ko.',
  'The scratch directory (initramfs, /init, serial.log) is removed after a pass and kept after a failure or with --keep.',
  'Exit codes: 0 every step held; 1 a step failed, or the test could not run (one line says why); ' +
    `${EXIT.USAGE} command line not understood; ${EXIT.INTERNAL} internal error in klpforge.`,
].join('\n\n');

export function verifyBuilder(y: Argv) {
  return y
    .positional('module', { type: 'string', demandOption: true, describe: 'livepatch module (.ko) to test' })
    .option('kernel', {
      type: 'string',
      demandOption: true,
      describe:
        "bzImage to boot (from its build directory: BUILD/arch/x86/boot/bzImage), or debian:RELEASE to boot that Debian kernel's own vmlinuz (fetched into the cache if needed)",
    })
    .option('with-module', {
      type: 'string',
      array: true,
      nargs: 1,
      default: [] as string[],
      describe:
        "with --kernel debian:RELEASE: put that kernel's module NAME, and the modules it depends on, under /modules (e.g. /modules/fs/binfmt_misc.ko) (repeatable)",
    })
    .option('cache-dir', {
      type: 'string',
      default: path.join(os.homedir(), '.cache/klpforge'),
      describe: 'where debian:RELEASE kernels are kept',
    })
    .option('check', {
      type: 'string',
      array: true,
      nargs: 1,
      default: [] as string[],
      describe: 'shell test run in the guest (repeatable)',
    })
    .option('check-file', {
      type: 'string',
      array: true,
      nargs: 1,
      default: [] as string[],
      describe: 'a file whose text is one shell test, named by its path in the report (repeatable; after the --checks)',
    })
    .option('modules', { type: 'string', describe: 'kernel build directory whose .ko files the guest gets under /modules' })
    .option('json', { type: 'boolean', default: false, describe: 'print the report as one JSON object' })
    .option('timeout', { type: 'number', default: 120, describe: 'seconds before a hung guest is killed' })
    .option('keep', { type: 'boolean', default: false, describe: 'keep the scratch directory even when everything passed' })
    .option('accel', {
      choices: ['auto', 'kvm', 'tcg'] as const,
      default: 'auto' as const,
      describe: 'QEMU accelerator; auto tries KVM once, falls back to TCG',
    })
    .epilogue(VERIFY_EPILOGUE);
}

export interface VerifyCommandArgs {
  module: string;
  kernel: string;
  check: readonly string[];
  checkFile: readonly string[];
  modules?: string;
  json: boolean;
  timeout: number;
  keep: boolean;
  accel: AcceleratorChoice;
  cacheDir?: string;
  withModule?: readonly string[];
}

/** `klpforge verify MODULE.ko --kernel bzImage`: prints the report; 0 only when every step held. */
export async function verifyCommand(a: VerifyCommandArgs, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const files = await readCheckFiles(a.checkFile.map(String));
  const release = parseDebianKernel(a.kernel);
  const debian =
    release === undefined
      ? undefined
      : (
          await ensureDebianKernel(release, path.resolve(a.cacheDir ?? path.join(os.homedir(), '.cache/klpforge')), (l) =>
            err(`klpforge: ${l}`),
          )
        ).kernel;
  const wanted = (a.withModule ?? []).map(String);
  if (wanted.length > 0 && !debian)
    throw new VerifyError(
      'VERIFY_INPUT',
      '--with-module picks modules of a --kernel debian:RELEASE kernel; for a kernel you built, pass its build dir with --modules',
    );
  const moduleFiles = debian && wanted.length > 0 ? await modulesWithDependencies(debian.modulesDir, wanted) : [];
  const report = await verifyModule({
    module: a.module,
    kernel: debian ? debian.vmlinuz : a.kernel,
    ...(debian ? { genInitCpio: debian.genInitCpio } : {}),
    moduleFiles,
    checks: [...a.check.map(String), ...files.map((f) => f.text)],
    checkLabels: [...a.check.map(() => undefined), ...files.map((f) => f.label)],
    modulesDir: a.modules,
    timeoutSeconds: a.timeout,
    keep: a.keep,
    accel: a.accel,
  });
  if (a.json) out(reportJson(report));
  else for (const l of formatReport(report)) out(l);
  if (report.ok) return EXIT.OK;
  err(`klpforge: ${failureSummary(report)}`);
  return EXIT.ERROR;
}
