import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkManifest, readManifest } from '../../src/pipeline/batch/manifest.js';
import { allPairs, pairId, pairsOfShard, parseShard, shardOf } from '../../src/pipeline/batch/pairs.js';
import { junitXml } from '../../src/pipeline/batch/junit.js';
import { batchExitCode, type BatchReport, mergeReports, summarize } from '../../src/pipeline/batch/report.js';
import { type PairResult, reusableResult, writeResult } from '../../src/pipeline/batch/results.js';
import type { InputsDigest } from '../../src/pipeline/batch/inputs.js';
import { slotsFor } from '../../src/pipeline/batch/run.js';
import { summaryLines } from '../../src/cli/commands/batch-summary.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'klpforge-batch-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const kernel = (name: string) => ({ name, source: 'src', config: 'cfg', vmlinux: 'vmlinux' });
const set = (name: string) => ({ name, patches: [`${name}.patch`] });

describe('batch manifest', () => {
  test('resolves paths relative to the manifest and tells hand-built from distribution kernels', () => {
    const m = checkManifest('/ci/work/batch.json', {
      kernels: [kernel('k1'), { name: 'deb', kernel: 'debian:6.1.0-57-amd64' }],
      patchsets: [{ name: 'fix', patches: ['p/a.patch', '/abs/b.patch'], checks: ['grep -q x /proc/cmdline', { file: 'c.sh' }] }],
    });
    expect(m.kernels[0]).toEqual({
      kind: 'built',
      name: 'k1',
      source: '/ci/work/src',
      config: '/ci/work/cfg',
      vmlinux: '/ci/work/vmlinux',
    });
    expect(m.kernels[1]).toEqual({ kind: 'distro', name: 'deb', kernel: 'debian:6.1.0-57-amd64' });
    expect(m.patchsets[0]!.patches).toEqual(['/ci/work/p/a.patch', '/abs/b.patch']);
    expect(m.patchsets[0]!.checks[1]!.label).toBe('/ci/work/c.sh');
  });

  test.each([
    [{ kernels: [], patchsets: [set('a')] }, /kernels: expected a non-empty list/],
    [{ kernels: [kernel('k')], patchsets: [set('a')], extra: 1 }, /extra: unknown key/],
    [{ kernels: [kernel('k'), kernel('k')], patchsets: [set('a')] }, /"k" is used twice/],
    [{ kernels: [{ ...kernel('k'), sourcedir: 'x' }], patchsets: [set('a')] }, /kernels\[0\] \(k\): unknown key "sourcedir"/],
    [{ kernels: [kernel('a@b')], patchsets: [set('a')] }, /kernels\[0\]: name "a@b"/],
    [{ kernels: [{ name: 'd', kernel: 'fedora:6.1' }], patchsets: [set('a')] }, /expected debian:RELEASE/],
    [{ kernels: [kernel('k')], patchsets: [{ name: 'a', patches: [] }] }, /patches: expected a non-empty list/],
    [{ kernels: [kernel('k')], patchsets: [{ name: 'a', patches: ['x'], checks: [''] }] }, /checks\[0\]: expected a shell test/],
  ])('refuses a bad manifest with one line naming the entry (%#)', (data, message) => {
    expect(() => checkManifest('/m.json', data)).toThrow(message);
  });

  test('reads YAML when the file says so, and check files when the batch starts', async () => {
    await writeFile(path.join(dir, 'check.sh'), 'grep -q klpforge /proc/cmdline\n');
    const file = path.join(dir, 'm.yaml');
    await writeFile(
      file,
      'kernels:\n  - name: deb\n    kernel: debian:6.1.0-57-amd64\npatchsets:\n  - name: fix\n    patches: [a.patch]\n    checks:\n      - file: check.sh\n',
    );
    const m = await readManifest(file);
    expect(m.patchsets[0]!.checks[0]!.text).toBe('grep -q klpforge /proc/cmdline\n');
    await writeFile(file, 'kernels: [\n');
    await expect(readManifest(file)).rejects.toThrow(/not valid YAML/);
    await writeFile(
      path.join(dir, 'bad.json'),
      JSON.stringify({ kernels: [kernel('k')], patchsets: [{ ...set('a'), checks: [{ file: 'gone.sh' }] }] }),
    );
    await expect(readManifest(path.join(dir, 'bad.json'))).rejects.toThrow(/check file .*gone\.sh: ENOENT/);
  });
});

describe('batch shards', () => {
  const manifest = (kernels: number, sets: number) =>
    checkManifest('/m.json', {
      kernels: Array.from({ length: kernels }, (_, i) => kernel(`k${i}`)),
      patchsets: Array.from({ length: sets }, (_, i) => set(`s${i}`)),
    });

  test('N shards cover every pair exactly once', () => {
    const pairs = allPairs(manifest(5, 40));
    const seen = [1, 2, 3].flatMap((index) => pairsOfShard(pairs, { index, count: 3 }).map((p) => p.id));
    expect(seen.sort()).toEqual(pairs.map((p) => p.id).sort());
    for (const index of [1, 2, 3]) expect(pairsOfShard(pairs, { index, count: 3 }).length).toBeGreaterThan(40);
  });

  test('adding a kernel moves no existing pair to another shard', () => {
    const before = allPairs(manifest(3, 30));
    const after = allPairs(manifest(4, 30));
    const shardBefore = new Map(before.map((p) => [p.id, shardOf(p.id, 4)]));
    for (const p of after) if (shardBefore.has(p.id)) expect(shardOf(p.id, 4)).toBe(shardBefore.get(p.id));
  });

  test.each(['0/2', '3/2', '1', 'a/b', '1/0'])('--shard %s is refused', (text) => {
    expect(() => parseShard(text)).toThrow(/expected I\/N/);
  });
});

const result = (patchset: string, kernelName: string, status: PairResult['status'], extra: Partial<PairResult> = {}): PairResult => ({
  pair: pairId(patchset, kernelName),
  kernel: kernelName,
  patchset,
  status,
  exitCode: status === 'refused' ? 2 : status === 'failed' ? 1 : 0,
  reasons: [],
  stages: [],
  inputs: 'abc' as InputsDigest,
  verify: false,
  seconds: 1.5,
  finishedAt: '2026-11-29T10:00:00.000Z',
  ...extra,
});

const report = (results: PairResult[], shards = [{ index: 1, count: 2 }]): BatchReport => ({
  format: 'klpforge-batch/1',
  klpforge: '0.1.0',
  kernels: ['k1', 'k2'],
  patchsets: ['a', 'b'],
  shards,
  verify: false,
  startedAt: '2026-11-29T10:00:00.000Z',
  wallSeconds: 10,
  summary: summarize(results, 4),
  results,
});

describe('batch reports', () => {
  test('merge joins shards in manifest order, keeps the later of a pair found twice and counts what no shard covered', () => {
    const notes: string[] = [];
    const one = report([result('b', 'k1', 'built'), result('a', 'k2', 'refused')]);
    const two = report(
      [result('a', 'k1', 'built'), result('a', 'k2', 'built', { finishedAt: '2026-11-29T11:00:00.000Z' })],
      [{ index: 2, count: 2 }],
    );
    const m = mergeReports(
      [
        { file: 'one.json', report: one },
        { file: 'two.json', report: two },
      ],
      (l) => notes.push(l),
    );
    expect(m.results.map((r) => `${r.pair}=${r.status}`)).toEqual(['a@k1=built', 'a@k2=built', 'b@k1=built']);
    expect(m.summary).toMatchObject({ pairs: 3, built: 3, missing: 1 });
    expect(batchExitCode(m.summary)).toBe(1);
    expect(notes).toEqual([expect.stringMatching(/a@k2 is in more than one report/)]);
    expect(() => mergeReports([{ file: 'x.json', report: { results: [] } }], () => {})).toThrow(/x.json: not a klpforge batch report/);
    expect(() =>
      mergeReports(
        [
          { file: 'one.json', report: one },
          { file: 'z.json', report: { ...two, kernels: ['k1'] } },
        ],
        () => {},
      ),
    ).toThrow(/z.json: another manifest/);
  });

  test('exit code: 0 all built, 2 some refused, 1 any failed', () => {
    expect(batchExitCode(summarize([result('a', 'k1', 'built'), result('a', 'k2', 'verified')], 2))).toBe(0);
    expect(batchExitCode(summarize([result('a', 'k1', 'built'), result('a', 'k2', 'refused')], 2))).toBe(2);
    expect(batchExitCode(summarize([result('a', 'k1', 'failed'), result('a', 'k2', 'refused')], 2))).toBe(1);
  });

  test('JUnit: refusals carry their code and reasons, and text from compilers cannot break the XML', () => {
    const xml = junitXml(
      report([
        result('a', 'k1', 'refused', {
          code: 'BUILD_REFUSED',
          message: 'cannot <livepatch> "x" & y\u0001',
          reasons: [{ code: 'DATA_CHANGED', object: 'mm/util.o', message: 'data' }],
        }),
        result('b', 'k1', 'built', { module: { path: 'pairs/k1/b/livepatch-b.ko', sha256: 'f'.repeat(64), size: 1 } }),
      ]),
    );
    expect(xml).toContain('<testsuite name="k1" tests="2" failures="1"');
    expect(xml).toContain('type="BUILD_REFUSED"');
    expect(xml).toContain('cannot &lt;livepatch&gt; &quot;x&quot; &amp; y?');
    expect(xml).toContain('mm/util.o: DATA_CHANGED: data');
    expect(xml).not.toMatch(/[\u0000-\u0008]/);
  });

  test('the summary is a matrix of patch sets by kernels with the failures below', () => {
    const lines = summaryLines(
      report([result('a', 'k1', 'built', { cached: true }), result('a', 'k2', 'failed', { message: 'patch does not apply' })]),
    );
    expect(lines[0]).toMatch(/^patch set\s+k1\s+k2$/);
    expect(lines[1]).toMatch(/^a\s+built\*\s+failed$/);
    expect(lines).toContain('a@k2: failed: patch does not apply');
  });
});

describe('batch results', () => {
  test('a result is reused only for the same inputs, a verifying run only from a verified one, and only while its module is intact', async () => {
    const out = path.join(dir, 'out');
    const module = { path: 'pairs/k1/a/livepatch-a.ko', sha256: '', size: 3 };
    await mkdir(path.join(out, 'pairs/k1/a'), { recursive: true });
    await writeFile(path.join(out, module.path), 'abc');
    module.sha256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    await writeResult(out, result('a', 'k1', 'built', { module }));
    const id = pairId('a', 'k1');
    expect(await reusableResult(out, id, 'abc' as InputsDigest, false)).toMatchObject({ status: 'built' });
    expect(await reusableResult(out, id, 'other' as InputsDigest, false)).toBeUndefined();
    expect(await reusableResult(out, id, 'abc' as InputsDigest, true)).toBeUndefined();
    await writeFile(path.join(out, module.path), 'abd');
    expect(await reusableResult(out, id, 'abc' as InputsDigest, false)).toBeUndefined();
  });

  test('pairs at once: -j, bounded by the memory each needs', () => {
    expect(slotsFor(4, 1536, 20_000)).toBe(4);
    expect(slotsFor(8, 1536, 4_000)).toBe(2);
    expect(slotsFor(4, 1536, 100)).toBe(1);
  });
});
