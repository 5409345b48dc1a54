import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { defineCommand } from './command.js';

export const BATCH_EPILOGUE = [
  'MANIFEST (JSON, or YAML when named .yaml/.yml; paths relative to it): {"kernels": [{"name", "source", "config", "vmlinux"[, "image", ' +
    '"original"]} or {"name", "kernel": "debian:RELEASE"}, ...], "patchsets": [{"name", "patches": [...], "checks": ["shell test" or ' +
    '{"file": PATH}, ...]}, ...]}. Every (patch set, kernel) pair is one `klpforge build` (and verify with --verify; a set without ' +
    'checks is verified by loading alone).',
  'OUTDIR gets report.json and pairs/KERNEL/PATCHSET/{livepatch-PATCHSET.ko, result.json, build.log}. A pair whose inputs (patch ' +
    'bytes, checks, kernel, klpforge version) match a finished result there is not built again (--force does).',
  'Exit codes: 0 every pair built (and verified); 2 some refused, none failed; 1 a pair failed, or bad input (one line says what); ' +
    '64 command line not understood; 130 interrupted (finished pairs kept: run again to do the rest).',
].join('\n\n');

export const batchCli = defineCommand({
  command: 'batch <manifest>',
  describe: 'build (and verify) every patch set of a manifest for every kernel in it, with reports CI systems read',
  builder: (y: Argv) =>
    y
      .positional('manifest', { type: 'string', demandOption: true, describe: 'the manifest: kernels and patch sets' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'output dir: modules, results, report.json' })
      .option('jobs', {
        alias: 'j',
        type: 'number',
        default: Math.max(1, Math.floor(os.cpus().length / 2)),
        describe: 'pairs built at once (fewer if memory is short: see --memory-per-job)',
      })
      .option('build-jobs', { type: 'number', describe: "each pair's parallel compiles (default: the cores shared among the pairs)" })
      .option('memory-per-job', { type: 'number', default: 1536, describe: 'MiB one pair may need at its peak: bounds the pairs at once' })
      .option('shard', { type: 'string', describe: "I/N: build only this worker's share of the pairs (a stable hash of each pair's name)" })
      .option('verify', { type: 'boolean', default: false, describe: "boot each kernel in QEMU with each module and run the set's checks" })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'build every pair again, even with a finished result in the output dir',
      })
      .option('junit', { type: 'string', describe: 'also write the results as JUnit XML (one testsuite per kernel)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the report on stdout' })
      .option('cache-dir', { type: 'string', default: path.join(os.homedir(), '.cache/klpforge'), describe: 'cache shared by all pairs' })
      .option('runner', { choices: ['host', 'bwrap', 'podman', 'docker'] as const, describe: 'where compiles run (as build --runner)' })
      .option('image', {
        type: 'string',
        describe:
          'container image for --runner podman (required) or docker (default: made from the bwrap rootfs, klpforge/rootfs:SUITE-KEY)',
      })
      .option('rootfs', { type: 'string', describe: 'Debian rootfs for --runner bwrap' })
      .epilogue(BATCH_EPILOGUE),
  run: async (a, io) => {
    const { batchCommand } = await import('../commands/batch-command.js');
    return batchCommand(
      {
        manifest: a.manifest,
        output: a.output,
        jobs: a.jobs,
        ...(a['build-jobs'] !== undefined ? { buildJobs: a['build-jobs'] } : {}),
        memoryPerJob: a['memory-per-job'],
        ...(a.shard !== undefined ? { shard: a.shard } : {}),
        verify: a.verify,
        force: a.force,
        ...(a.junit !== undefined ? { junit: a.junit } : {}),
        json: a.json,
        cacheDir: a['cache-dir'],
        ...(a.runner !== undefined ? { runner: a.runner } : {}),
        ...(a.image !== undefined ? { image: a.image } : {}),
        ...(a.rootfs !== undefined ? { rootfs: a.rootfs } : {}),
      },
      io.out,
      io.err,
    );
  },
});

export const batchMergeCli = defineCommand({
  command: 'batch-merge <reports..>',
  describe: "print shards' batch reports (--json output or OUTDIR/report.json) combined into one",
  builder: (y: Argv) =>
    y
      .positional('reports', { type: 'string', array: true, demandOption: true, describe: 'the reports of the shards' })
      .option('junit', { type: 'string', describe: 'also write the combined results as JUnit XML' })
      .epilogue('Exit codes: as batch, for the combined results (a pair no report covers counts as failed: 1).'),
  run: async (a, io) => {
    const { batchMergeCommand } = await import('../commands/batch-command.js');
    return batchMergeCommand({ reports: a.reports.map(String), ...(a.junit !== undefined ? { junit: a.junit } : {}) }, io.out, io.err);
  },
});
