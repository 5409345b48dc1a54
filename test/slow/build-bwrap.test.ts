import { jest } from '@jest/globals';
import { readFile, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { ensureRootfs } from '../../src/orchestrator/runners/rootfs.js';
import { type BuildRun, privateCache, runBuild } from '../helpers/build-runs.js';
import { fixtureKernel } from '../helpers/kernel.js';

/**
 * `klpforge build --runner bwrap` end to end on the Linux 6.1 fixture: every
 * compile (the struct-size probe, the patched object, the module) runs in the
 * bubblewrap sandbox over the debootstrap rootfs. The original build is the
 * fixture's, adopted into a private cache: it lives outside the cache dir, so
 * the sandbox must be given it once the cache entry is known. The sandboxed
 * runs reach the cache through a symbolic link, as with a ~/.cache that links
 * elsewhere: the cache is used by its real path, which must be bound too. The
 * module must be the same bytes as the host runner's.
 */
jest.setTimeout(20 * 60_000); // the rootfs is made here on a machine without one (minutes, once)

const kernel = fixtureKernel();
let cache: { dir: string; remove: () => Promise<void> };
let tmp: DirectoryResult;
let rootfs: string;
let link: string;

beforeAll(async () => {
  rootfs = (await ensureRootfs({ onProgress: (line) => process.stderr.write(`${line}\n`) })).path;
  tmp = await dir({ unsafeCleanup: true });
  cache = await privateCache(kernel, 'bwrap');
  link = `${cache.dir}-link`;
  await symlink(cache.dir, link);
}, 20 * 60_000);

afterAll(async () => {
  if (link) await rm(link, { force: true });
  await cache?.remove();
  await tmp?.cleanup();
});

interface Report {
  module: string;
  original: { buildDir: string; speculation: string };
}

function report(r: BuildRun): Report {
  if (r.exitCode !== 0) throw new Error(`build failed (exit ${r.exitCode}):\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as Report;
}

const bwrap = (out: string) =>
  runBuild(kernel, link, path.join(tmp.path, out), { extra: ['--json', '--runner', 'bwrap', '--rootfs', rootfs] });
const host = (out: string) => runBuild(kernel, cache.dir, path.join(tmp.path, out), { extra: ['--json'] });

test("sandboxed builds of an adopted original (outside the cache dir, the cache behind a symlink) give the host runner's module, byte for byte", async () => {
  // First in a fresh cache: the struct-size probe compiles against the original build inside the sandbox.
  const first = report(await bwrap('bwrap-1'));
  expect(first.original).toMatchObject({ buildDir: kernel.fsections, speculation: 'none' });
  const onHost = report(await host('host'));
  // Then on the entry guessed before the key is known: the sandbox is given that build dir too.
  const second = report(await bwrap('bwrap-2'));
  expect(second.original.speculation).toBe('confirmed');
  const bytes = await readFile(onHost.module);
  expect((await readFile(first.module)).equals(bytes)).toBe(true);
  expect((await readFile(second.module)).equals(bytes)).toBe(true);
});

test("the lazy original in the sandbox: the tree is prepared and its original objects compiled inside it, and the module is the host's, byte for byte", async () => {
  const lazy = (runner: string[], out: string) =>
    runBuild(kernel, link, path.join(tmp.path, out), { extra: ['--json', '--original', 'lazy', ...runner] });
  // The sandbox prepares the tree (a fresh cache: nothing prepared yet) and compiles fs/proc/cmdline.o in it.
  const sandboxed = report(await lazy(['--runner', 'bwrap', '--rootfs', rootfs], 'lazy-bwrap'));
  expect(
    sandboxed.original.buildDir.startsWith(path.join(await import('node:fs/promises').then((fs) => fs.realpath(cache.dir)), 'prepared')),
  ).toBe(true);
  const onHost = report(await lazy([], 'lazy-host'));
  expect((await readFile(sandboxed.module)).equals(await readFile(onHost.module))).toBe(true);
});
