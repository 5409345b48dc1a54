import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { EXIT } from '../exit-codes.js';
import { defineCommand } from './command.js';

export const VERIFY_DESCRIPTION = 'boot a kernel in QEMU and prove a livepatch module loads, works, and unloads cleanly';

// One paragraph per entry: yargs wraps each to the terminal width.
export const VERIFY_EPILOGUE = [
  'In the guest, in order: each --check must fail; insmod the module; its transition ends and the patch is enabled; ' +
    'each --check must hold; the patch is disabled and rmmod-ed; each --check must fail again. The kernel log must show ' +
    'no WARNING, Oops, BUG or Call Trace, and no taint besides K (livepatch) and O (out-of-tree).',
  'Checks run with busybox sh in / (30 s limit each); with --modules DIR, DIR/x/y.ko is at /modules/x/y.ko.',
  "The module's ELF machine picks the guest: x86_64 boots in qemu-system-x86_64 with the host's static busybox; " +
    's390x in qemu-system-s390x (TCG) with the static s390x busybox scripts/fetch-busybox s390x puts in the cache.',
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
        "bzImage to boot (from its build directory: BUILD/arch/x86/boot/bzImage, or BUILD/arch/s390/boot/bzImage for an s390x module, booted in qemu-system-s390x), or debian:RELEASE to boot that Debian kernel's own vmlinuz (fetched into the cache if needed)",
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

export const verifyCli = defineCommand({
  command: 'verify <module>',
  describe: VERIFY_DESCRIPTION,
  builder: verifyBuilder,
  run: async (a, io) => {
    const { verifyCommand } = await import('../commands/verify-command.js');
    return verifyCommand(
      { ...a, module: a.module, checkFile: a['check-file'], cacheDir: a['cache-dir'], withModule: a['with-module'] },
      io.out,
      io.err,
    );
  },
});
