/**
 * `klpforge build` with the source tree's filesystem full, run by
 * test/slow/build-bad-input.test.ts as
 *
 *     unshare --mount --propagation private node dist/test/helpers/full-disk-scenario.js JSON
 *
 * The work dir must be on the source tree's filesystem (hard-link view), so
 * filling some other filesystem would not reach it. In a private mount
 * namespace (seen by this process and its children only, gone when they
 * exit), a small tmpfs is mounted over the directory holding the fixture
 * tree, and a full copy of the tree (`cp -a`: same paths, sizes, modes and
 * nanosecond mtimes) is put in it, so klpforge sees the very tree the cache
 * key was made for (same path, same digest: a cache hit, nothing to build).
 * The cache dir is on another filesystem, so the work dir goes to
 * `.klpforge-work` beside the tree, on the tmpfs. The rest of the tmpfs is
 * filled with a file, then shrunk to leave `freeKiB` free, and the build runs.
 *
 * Prints one JSON object: per free-space level, the run's exit code, output,
 * the tree's state before and after, and what is left under .klpforge-work.
 */
import { mkdir, readdir, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { digestTree } from '../../src/orchestrator/original/tree-digest.js';
import { CLI, treeState, type TreeState } from './build-runs.js';

interface Input {
  source: string;
  config: string;
  vmlinux: string;
  cacheDir: string;
  outDir: string;
  patch: string;
  touched: string[];
  freeKiB: number[];
}

export interface Level {
  freeKiB: number;
  /** What statfs said right before the build. */
  measuredFreeKiB: number;
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  before: TreeState;
  after: TreeState;
  /** Entries under .klpforge-work after the run. */
  leftovers: string[];
}

export interface ScenarioResult {
  originalDigest: string;
  copyDigest: string;
  tmpfsKiB: number;
  levels: Level[];
}

async function run(cmd: string, args: string[]): Promise<void> {
  await execa(cmd, args, { stdin: 'ignore', cwd: '/' });
}

async function freeKiB(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Math.floor((Number(s.bfree) * Number(s.bsize)) / 1024);
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]!) as Input;
  const parent = path.dirname(o.source);
  const originalDigest = (await digestTree(o.source)).digest;
  // This process's cwd keeps naming the real tree after the tmpfs hides it; cp reads it through /proc/PID/cwd.
  process.chdir(o.source);
  const hidden = `/proc/${process.pid}/cwd/.`;
  const tmpfsKiB = 1_600 * 1024;
  await run('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsKiB}k,mode=755`, 'klpforge-full-disk-test', parent]);
  await mkdir(o.source);
  await run('cp', ['-a', hidden, `${o.source}/`]);
  process.chdir('/');
  const copyDigest = (await digestTree(o.source)).digest;
  const result: ScenarioResult = { originalDigest, copyDigest, tmpfsKiB, levels: [] };
  // Another digest would be another cache key: klpforge would start a full kernel build. Never do that here.
  if (copyDigest !== originalDigest) {
    process.stdout.write(JSON.stringify(result));
    return;
  }

  const fill = path.join(parent, 'fill');
  const work = path.join(parent, '.klpforge-work');
  for (const free of o.freeKiB) {
    await rm(fill, { force: true });
    await execa('dd', ['if=/dev/zero', `of=${fill}`, 'bs=1M'], { reject: false, stdin: 'ignore' }); // until ENOSPC
    if (free > 0) await run('truncate', ['-s', `-${free}K`, fill]);
    const before = await treeState(o.source, o.touched);
    const measuredFreeKiB = await freeKiB(parent);
    const r = await execa(
      process.execPath,
      [
        CLI,
        'build',
        o.patch,
        '-s',
        o.source,
        '-c',
        o.config,
        '-v',
        o.vmlinux,
        // The full original (adopted, outside the full filesystem): the scenario is about the work dir's disk, and the cache must not change.
        '--cache-dir',
        o.cacheDir,
        '-o',
        o.outDir,
        '-j',
        '2',
        '--original',
        'full',
      ],
      { reject: false, stdin: 'ignore', timeout: 300_000 },
    );
    const after = await treeState(o.source, o.touched);
    const leftovers = await readdir(work).catch(() => [] as string[]);
    result.levels.push({
      freeKiB: free,
      measuredFreeKiB,
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: String(r.stdout),
      stderr: String(r.stderr),
      before,
      after,
      leftovers,
    });
  }
  process.stdout.write(JSON.stringify(result));
}

if (process.argv[1]?.endsWith('full-disk-scenario.js')) {
  main().catch((e: unknown) => {
    process.stderr.write(`full-disk scenario: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
