import { jest } from '@jest/globals';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse as parseJunit } from 'test-results-parser';
import { newestDebianRelease } from '../../src/orchestrator/acquire/debian-kernel.js';
import { shardOf, type pairId } from '../../src/pipeline/batch/pairs.js';
import type { BatchReport } from '../../src/pipeline/batch/report.js';
import { explainRun, INTEGRATION_DIR, integrationFixture, klpforge } from '../helpers/integration.js';
import { REPO_ROOT } from '../helpers/kernel.js';

/**
 * Issue #14's proof: `klpforge batch` over 3 patch sets x 2 kernels (the
 * fixture kernel, and Debian's newest stock 6.1 kernel: another configuration
 * of Linux 6.1, fetched by klpforge), run as 2 shards and merged; rerun from
 * its results; killed mid-run and run again; and 4 jobs at once against a
 * cold cache giving the modules 4 sequential builds give.
 */
jest.setTimeout(2_400_000);

const fx = integrationFixture();
const CACHE = process.env.KLPFORGE_CACHE ?? path.join(os.homedir(), '.cache/klpforge');
const CLI = path.join(REPO_ROOT, 'bin/klpforge.js');

let dir: string;
let release: string;

beforeAll(async () => {
  const newest = await newestDebianRelease('6.1', 'amd64');
  if (newest === undefined) throw new Error('apt knows no linux-image-6.1.0-*-amd64: run apt-get update');
  release = newest;
  dir = await mkdtemp(path.join(os.tmpdir(), 'klpforge-batch-'));
  // The manifest's patches sit beside it and are named relative to it, as in a pipeline's checkout.
  await mkdir(path.join(dir, 'patches'));
  await copyFile(path.join(INTEGRATION_DIR, '01-cmdline-extra-word/fix.patch'), path.join(dir, 'patches/cmdline.patch'));
  await copyFile(path.join(INTEGRATION_DIR, '01-cmdline-extra-word/check.sh'), path.join(dir, 'patches/cmdline-check.sh'));
  await copyFile(path.join(INTEGRATION_DIR, '14-data-initializer-FAIL/fix.patch'), path.join(dir, 'patches/data.patch'));
  // Context from no kernel: the patch applies nowhere.
  const cmdline = await readFile(path.join(INTEGRATION_DIR, '01-cmdline-extra-word/fix.patch'), 'utf8');
  await writeFile(path.join(dir, 'patches/stale.patch'), cmdline.replace(/^ (.*seq_puts.*)$/m, ' $1 /* not in any tree */'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function manifest() {
  const k = fx.kernel;
  return {
    kernels: [
      { name: 'fixture', source: k.source, config: path.join(k.fsections, '.config'), vmlinux: k.vmlinux, image: k.bzImage },
      { name: 'debian', kernel: `debian:${release}` },
    ],
    patchsets: [
      { name: 'cmdline', patches: ['patches/cmdline.patch'], checks: [{ file: 'patches/cmdline-check.sh' }] },
      { name: 'data-change', patches: ['patches/data.patch'] },
      { name: 'stale', patches: ['patches/stale.patch'] },
    ],
  };
}

const EXPECTED: Record<string, string> = {
  'cmdline@fixture': 'verified',
  'cmdline@debian': 'verified',
  'data-change@fixture': 'refused',
  'data-change@debian': 'refused',
  'stale@fixture': 'failed',
  'stale@debian': 'failed',
};

async function batch(args: readonly string[]) {
  const r = await klpforge(['batch', path.join(dir, 'manifest.json'), '--cache-dir', CACHE, '--json', ...args], 2_400_000);
  let report: BatchReport | undefined;
  try {
    report = JSON.parse(r.stdout) as BatchReport;
  } catch {
    report = undefined;
  }
  return { ...r, report };
}

const statuses = (r: BatchReport | undefined) => Object.fromEntries((r?.results ?? []).map((x) => [x.pair, x.status]));

describe('klpforge batch: 3 patch sets x 2 kernels', () => {
  let merged: BatchReport;

  test('two shards split the six pairs by the hash of their names, and batch-merge joins their reports', async () => {
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest(), null, 2));
    const shards = [];
    for (const i of [1, 2]) {
      const out = path.join(dir, `shard${i}`);
      const r = await batch(['-o', out, '--shard', `${i}/2`, '--verify', '-j', '2', '--junit', path.join(dir, `shard${i}.xml`)]);
      // A refusal and a failure are among the six: never exit 0.
      expect(r.report).toBeDefined();
      const mine = Object.keys(EXPECTED).filter((id) => shardOf(id as ReturnType<typeof pairId>, 2) === i);
      expect(Object.keys(statuses(r.report)).sort()).toEqual(mine.sort());
      expect(r.report!.shards).toEqual([{ index: i, count: 2 }]);
      shards.push(path.join(out, 'report.json'));
    }
    const m = await klpforge(['batch-merge', ...shards, '--junit', path.join(dir, 'merged.xml')]);
    expect(m.exitCode).toBe(1); // failed pairs make the whole batch fail
    merged = JSON.parse(m.stdout) as BatchReport;
    expect(statuses(merged)).toEqual(EXPECTED);
    expect(merged.summary).toMatchObject({ pairs: 6, verified: 2, built: 0, refused: 2, failed: 2, missing: 0 });
    for (const r of merged.results) {
      if (r.status === 'verified') expect(r.module?.sha256).toMatch(/^[0-9a-f]{64}$/);
      if (r.status === 'refused') expect(r.reasons.map((x) => x.code)).toContain('DATA_CHANGED');
      if (r.status === 'failed') expect(r.code).toBe('ORCH_PATCH_DOES_NOT_APPLY');
      if (r.status === 'failed') expect(r.details).toMatch(/fs\/proc\/cmdline.c: hunk #1 FAILED/);
    }
  });

  test('the JUnit XML reads in a JUnit reader as one suite per kernel, one case per patch set, refusals and failures failing', async () => {
    const parsed = parseJunit({ type: 'junit', files: [path.join(dir, 'merged.xml')] });
    expect(parsed.total).toBe(6);
    expect(parsed.passed).toBe(2);
    expect(parsed.failed).toBe(4);
    expect(parsed.suites.map((s) => s.name).sort()).toEqual(['debian', 'fixture']);
    for (const s of parsed.suites) {
      const byName = Object.fromEntries(s.cases.map((c) => [c.name, c]));
      expect(Object.keys(byName).sort()).toEqual(['cmdline', 'data-change', 'stale']);
      expect(byName.cmdline!.status).toBe('PASS');
      expect(byName['data-change']!.status).toBe('FAIL');
      expect(byName['data-change']!.failure).toMatch(/DATA_CHANGED/);
      expect(byName.stale!.status).toBe('FAIL');
      expect(byName.stale!.failure).toMatch(/does not apply to the source tree/);
    }
  });

  test('a rerun with the same inputs builds nothing: every pair is reported as cached', async () => {
    const r = await batch(['-o', path.join(dir, 'shard1'), '--shard', '1/2', '--verify']);
    expect(r.report?.results.length).toBeGreaterThan(0);
    expect(r.report!.results.every((x) => x.cached === true)).toBe(true);
    expect(r.report!.summary.cached).toBe(r.report!.results.length);
    // The whole rerun is reading six small files and hashing modules (seconds); recorded, never asserted.
    process.stderr.write(`batch rerun, all cached: ${r.report!.wallSeconds.toFixed(2)}s\n`);
  });

  test('killed with -9 mid-run, the batch leaves no build running and a second run finishes the rest with the same modules', async () => {
    const out = path.join(dir, 'killed');
    const child = execa(process.execPath, [CLI, 'batch', path.join(dir, 'manifest.json'), '--cache-dir', CACHE, '-o', out, '-j', '1'], {
      reject: false,
      stdin: 'ignore',
    });
    // Kill once one pair has finished and the next is building.
    await until(async () => (await resultFiles(out)).length >= 1 && (await buildsOf(child.pid!)).length > 0, 600_000);
    child.kill('SIGKILL');
    await child;
    const pid = child.pid!;
    await until(async () => (await buildsOf(pid)).length === 0, 30_000);
    const before = await resultFiles(out);
    expect(before.length).toBeGreaterThanOrEqual(1);
    expect(before.length).toBeLessThan(6);
    const again = await batch(['-o', out, '-j', '2']);
    expect(again.exitCode).toBe(1);
    const byPair = new Map(again.report!.results.map((r) => [r.pair, r]));
    expect(Object.fromEntries([...byPair].map(([id, r]) => [id, r.status]))).toEqual({
      ...EXPECTED,
      'cmdline@fixture': 'built',
      'cmdline@debian': 'built',
    });
    expect(again.report!.summary.cached).toBe(before.length);
    // Reproducible: the modules are the verified shards' modules, byte for byte.
    for (const r of merged.results.filter((x) => x.module)) expect(byPair.get(r.pair)?.module?.sha256).toBe(r.module!.sha256);
  });
});

describe('klpforge batch: 4 jobs at once against a cold cache', () => {
  test('give, byte for byte, the modules of 4 sequential klpforge builds', async () => {
    const cases = ['01-cmdline-extra-word', '03-new-function', '04-static-local-counter', '10-syscall-uname'];
    const k = fx.kernel;
    const config = path.join(k.fsections, '.config');
    const m = {
      kernels: [{ name: 'fixture', source: k.source, config, vmlinux: k.vmlinux }],
      patchsets: cases.map((c) => ({ name: c.slice(3), patches: [path.join(INTEGRATION_DIR, c, 'fix.patch')] })),
    };
    const file = path.join(dir, 'four.json');
    await writeFile(file, JSON.stringify(m));
    const [coldBatch, coldSeq] = [path.join(dir, 'cache-batch'), path.join(dir, 'cache-seq')];
    const r = await klpforge(['batch', file, '-o', path.join(dir, 'four'), '-j', '4', '--cache-dir', coldBatch, '--json'], 2_400_000);
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(r.stdout) as BatchReport;
    expect(report.summary.built).toBe(4);
    const seqOut = path.join(dir, 'four-seq');
    for (const c of cases) {
      const s = await klpforge(
        [
          'build',
          path.join(INTEGRATION_DIR, c, 'fix.patch'),
          '-s',
          k.source,
          '-c',
          config,
          '-v',
          k.vmlinux,
          '--cache-dir',
          coldSeq,
          '-o',
          seqOut,
          '-n',
          c.slice(3),
          '-j',
          '2',
        ],
        2_400_000,
      );
      if (s.exitCode !== 0) throw new Error(explainRun(`build ${c}`, s));
    }
    for (const x of report.results) {
      const batchBytes = await readFile(path.join(dir, 'four', x.module!.path));
      const seqBytes = await readFile(path.join(seqOut, `livepatch-${x.patchset}.ko`));
      expect(batchBytes.equals(seqBytes)).toBe(true);
    }
  });
});

async function resultFiles(out: string): Promise<string[]> {
  const found: string[] = [];
  for (const kernel of await readdir(path.join(out, 'pairs')).catch(() => [] as string[]))
    for (const set of await readdir(path.join(out, 'pairs', kernel)).catch(() => [] as string[]))
      if ((await readdir(path.join(out, 'pairs', kernel, set)).catch(() => [] as string[])).includes('result.json'))
        found.push(`${set}@${kernel}`);
  return found;
}

/** The `klpforge build` processes a batch started (they carry its pid), alive or not yet reaped. */
async function buildsOf(batchPid: number): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const env = await readFile(`/proc/${name}/environ`, 'latin1').catch(() => '');
    const state = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    if (env.split('\0').includes(`KLPFORGE_BATCH_PARENT=${batchPid}`) && !/\) Z /.test(state)) found.push(Number(name));
  }
  return found;
}

async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
