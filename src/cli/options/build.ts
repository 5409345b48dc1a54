import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { EXIT } from '../exit-codes.js';
import { defineCommand } from './command.js';

export const BUILD_DESCRIPTION = 'build a livepatch module from a kernel source tree and one or more patches';

export const BUILD_EPILOGUE = [
  'Stages: checks (config, patch applies, vmlinux and compiler match), original build (cached by source tree, config, ' +
    "compiler and flags), patched objects (only what the patch reaches, with kbuild's recorded commands), diff, module.",
  'The source tree is never written: patches are applied to a private hard-link view in the work dir, which must be on ' +
    "the source tree's filesystem (default: the cache dir, else a .klpforge-work directory beside the tree).",
  'Exit codes: 0 module built (and verified with --verify); 1 bad input or a failed step (one line says what, where and ' +
    'what to do); 2 the change cannot be livepatched safely (every reason listed); 3 the patch changes no function; ' +
    `${EXIT.USAGE} command line not understood; ${EXIT.INTERNAL} internal error in klpforge; 130 interrupted.`,
].join('\n\n');

export function buildBuilder(y: Argv) {
  return y
    .positional('patches', {
      type: 'string',
      array: true,
      demandOption: true,
      describe: 'patch files (patch -p1), combined into one module',
    })
    .option('sourcedir', {
      alias: 's',
      type: 'string',
      describe: "kernel source tree (never modified); with --kernel debian:RELEASE, overrides the release's source",
    })
    .option('config', { alias: 'c', type: 'string', describe: "the running kernel's .config (default: SOURCEDIR/.config)" })
    .option('vmlinux', { alias: 'v', type: 'string', describe: "the running kernel's vmlinux (default: the original build's)" })
    .option('jobs', { alias: 'j', type: 'number', default: os.cpus().length, describe: 'parallel compiles' })
    .option('target', {
      alias: 't',
      type: 'string',
      array: true,
      default: [] as string[],
      describe:
        'kpatch-build make targets: accepted for compatibility; klpforge builds the whole original once and only what the patch reaches after',
    })
    .option('name', { alias: 'n', type: 'string', describe: "module name: livepatch-NAME.ko (default: the first patch's file name)" })
    .option('output', { alias: 'o', type: 'string', default: '.', describe: 'directory livepatch-NAME.ko is written to' })
    .option('debug', { alias: 'd', type: 'boolean', default: false, describe: 'keep the work dir and print the commands run' })
    .option('non-replace', {
      alias: 'R',
      type: 'boolean',
      default: false,
      describe: 'do not replace livepatches loaded before (atomic replace is on by default)',
    })
    .option('skip-cleanup', { type: 'boolean', default: false, describe: 'keep the work dir' })
    .option('skip-compiler-check', {
      type: 'boolean',
      default: false,
      describe: 'build even if the compiler differs from the one that built vmlinux (unsafe)',
    })
    .option('oot-module', {
      type: 'string',
      describe: 'patch an out-of-tree module: the running module (.ko); needs --oot-module-src (patches are then relative to that source)',
    })
    .option('oot-module-src', { type: 'string', describe: 'source directory of the out-of-tree module' })
    .option('archversion', {
      alias: 'a',
      type: 'string',
      describe: 'the kernel release the module is for (checked against the source and config)',
    })
    .option('runner', { choices: ['host', 'bwrap', 'podman', 'docker'] as const, default: 'host' as const, describe: 'where compiles run' })
    .option('image', {
      type: 'string',
      describe: 'container image for --runner podman (required) or docker (default: made from the bwrap rootfs, klpforge/rootfs:SUITE-KEY)',
    })
    .option('rootfs', { type: 'string', describe: 'Debian rootfs for --runner bwrap (default: made with debootstrap and cached)' })
    .option('cache-dir', {
      type: 'string',
      default: path.join(os.homedir(), '.cache/klpforge'),
      describe: 'cache of original builds and scratch space',
    })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'print a JSON report on stdout (stages, timings, functions, warnings, module)',
    })
    .option('verify', {
      type: 'boolean',
      default: false,
      describe: 'boot the kernel in QEMU and prove the module loads, works and unloads (klpforge verify)',
    })
    .option('kernel', {
      type: 'string',
      describe:
        'debian:RELEASE (e.g. debian:6.1.0-57-amd64): build for that Debian kernel, fetching its source, config and symbols; otherwise the bzImage for --verify (default: next to the vmlinux)',
    })
    .option('original', {
      choices: ['lazy', 'full'] as const,
      describe:
        'how the original side is made: lazy compiles only the objects the patch reaches in a prepared tree (default for --kernel debian:…; needs Module.symvers beside -v), full builds the whole kernel once and caches it (default otherwise)',
    })
    .option('check', {
      type: 'string',
      array: true,
      nargs: 1,
      default: [] as string[],
      describe: 'shell test for --verify: fails before, holds with the patch, fails after',
    })
    .option('check-file', {
      type: 'string',
      array: true,
      nargs: 1,
      default: [] as string[],
      describe: 'a file whose text is one shell test for --verify (repeatable)',
    })
    .epilogue(BUILD_EPILOGUE);
}

export const buildCli = defineCommand({
  command: 'build <patches..>',
  describe: BUILD_DESCRIPTION,
  builder: buildBuilder,
  run: async (a, io) => {
    const { buildCommand } = await import('../commands/build-command.js');
    return buildCommand(
      {
        patches: a.patches.map(String),
        sourcedir: a.sourcedir,
        config: a.config,
        vmlinux: a.vmlinux,
        jobs: a.jobs,
        target: a.target.map(String),
        name: a.name,
        output: a.output,
        debug: a.debug,
        nonReplace: a['non-replace'],
        skipCleanup: a['skip-cleanup'],
        skipCompilerCheck: a['skip-compiler-check'],
        ootModule: a['oot-module'],
        ootModuleSrc: a['oot-module-src'],
        archversion: a.archversion,
        runner: a.runner,
        image: a.image,
        rootfs: a.rootfs,
        cacheDir: a['cache-dir'],
        json: a.json,
        verify: a.verify,
        kernel: a.kernel,
        original: a.original,
        check: a.check.map(String),
        checkFile: a['check-file'].map(String),
      },
      io.out,
      io.err,
    );
  },
});
