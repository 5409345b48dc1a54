import { jest } from '@jest/globals';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { cacheLayout, type CacheEntryRecord, listEntries } from '../../src/orchestrator/original/cache-entries.js';
import { type BuildRun, outcomeLines, privateCache, runBuild } from '../helpers/build-runs.js';
import { fixtureKernel } from '../helpers/kernel.js';

/**
 * `klpforge build` runs the patched side against the cache entry it will most
 * likely use while the cache key (a digest of the whole tree) is computed
 * (src/pipeline/speculate.ts). On the Linux 6.1 fixture, with a private cache:
 * the guess is made only when the entry's stored index and struct sizes are
 * there, a confirmed guess gives the module, and a wrong guess is discarded
 * and the work redone against the entry the key names, with the same module.
 */
jest.setTimeout(300_000);

const kernel = fixtureKernel();

interface Report {
  ok: boolean;
  module: string;
  original: { key: string; buildDir: string; hit: boolean; speculation: string };
  stages: Array<{ stage: string }>;
}

let cache: { dir: string; remove: () => Promise<void> };
let tmp: DirectoryResult;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  cache = await privateCache(kernel, 'speculation');
});

afterAll(async () => {
  await cache?.remove();
  await tmp?.cleanup();
});

function report(r: BuildRun): Report {
  if (r.exitCode !== 0) throw new Error(`build failed (exit ${r.exitCode}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as Report;
}

const build = (out: string) => runBuild(kernel, cache.dir, path.join(tmp.path, out), { extra: ['--json'] });

describe('klpforge build on the likely original build', () => {
  let confirmed: Report;

  test('a fresh entry (no stored index or struct sizes yet): no guess; the next run guesses right and its module is the same bytes', async () => {
    const first = report(await build('first'));
    expect(first.original).toMatchObject({ hit: true, speculation: 'none', buildDir: kernel.fsections });
    confirmed = report(await build('second'));
    expect(confirmed.original).toMatchObject({ hit: true, speculation: 'confirmed', key: first.original.key, buildDir: kernel.fsections });
    expect(path.dirname(confirmed.module)).toBe(path.join(tmp.path, 'second')); // published to -o, not left in the work dir
    expect((await readFile(confirmed.module)).equals(await readFile(first.module))).toBe(true);
  });

  test('a newer entry for this tree and config that the key does not name: the guess is discarded with a note, the module is built again on the right entry', async () => {
    // What a tree updated in place leaves behind, in miniature: an entry made from this tree and config
    // (newest, complete, with its index and struct sizes) under another key. It is adopted, so it points
    // at the fixture build too; the key still differs, and a guess is confirmed only by key and build dir.
    const layout = cacheLayout(cache.dir);
    const [entry] = await listEntries(layout);
    const staleKey = 'f'.repeat(16);
    const stale: CacheEntryRecord = { ...entry!, key: staleKey, adopted: true, created: new Date(Date.now() + 60_000).toISOString() };
    await writeFile(path.join(layout.entries, `${staleKey}.json`), JSON.stringify(stale));
    for (const side of ['build-index', 'struct-sizes']) {
      await copyFile(path.join(cache.dir, side, `${entry!.key}.json`), path.join(cache.dir, side, `${staleKey}.json`));
    }

    const r = await build('third');
    const third = report(r);
    expect(third.original).toMatchObject({ key: confirmed.original.key, speculation: 'discarded' });
    expect(outcomeLines(r.stderr)).toContain(
      `klpforge: note: the newest cached original build of this tree no longer matches it; the patched side was built again against ${kernel.fsections}`,
    );
    // The discarded attempt reported nothing: each stage is in the report once.
    expect(third.stages.map((s) => s.stage).sort()).toEqual(['diff', 'generate', 'match', 'original', 'patched', 'preflight']);
    expect((await readFile(third.module)).equals(await readFile(confirmed.module))).toBe(true);

    // Nor on the progress lines of a plain run: each stage starts and ends once.
    const plain = await runBuild(kernel, cache.dir, path.join(tmp.path, 'fourth'));
    expect(plain.exitCode).toBe(0);
    for (const label of ['checks', 'original build', 'patched objects', 'diff', 'module']) {
      expect(plain.stderr.split('\n').filter((l) => l === `klpforge: ${label}: started`)).toHaveLength(1);
      expect(plain.stderr.split('\n').filter((l) => l.startsWith(`klpforge: ok     ${label} `))).toHaveLength(1);
    }
  });
});
