import { jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import { buildIndex, type BuildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { recompileObject } from '../../src/orchestrator/views/recompile.js';
import { ensureRootfs, STAMP_FILE, type Rootfs } from '../../src/orchestrator/runners/rootfs.js';
import { HostRunner, type Runner } from '../../src/orchestrator/runners/runner.js';
import { BwrapRunner } from '../../src/orchestrator/runners/bwrap.js';
import { createRunner } from '../../src/orchestrator/runners/create-runner.js';
import { fixtureKernel } from '../helpers/kernel.js';

/**
 * The bwrap runner for real: the Debian rootfs made by debootstrap from this
 * machine's apt sources (made here when the cache has none: about 3 minutes
 * on 2 cores, once per machine), and the fixture kernel's objects compiled in
 * it. The fixture tree and build are bound read-only; outputs go to temp dirs.
 */
jest.setTimeout(120_000);

const OBJECT = 'fs/proc/cmdline.o';

describe('BwrapRunner over the debootstrap rootfs', () => {
  const kernel = fixtureKernel();
  let rootfs: Rootfs;
  let work: DirectoryResult;
  let runner: Runner;
  let index: BuildIndex;
  const sh = (script: string) => runner.run(['sh', '-c', script], { cwd: work.path });

  beforeAll(async () => {
    rootfs = await ensureRootfs({ onProgress: (line) => process.stderr.write(`${line}\n`) });
    if (rootfs.made) process.stderr.write(`rootfs made in ${Math.round(rootfs.stamp.seconds)} s\n`);
    work = await dir({ prefix: 'klpforge-bwrap-', unsafeCleanup: true });
    index = await buildIndex(kernel.fsections);
    // As `klpforge build --runner bwrap` gets it: the factory finds the cached rootfs.
    runner = await createRunner({
      kind: 'bwrap',
      readOnly: [kernel.source, index.recordedSourceDir, kernel.fsections],
      writable: [work.path],
    });
  }, 20 * 60_000);
  afterAll(async () => {
    await work?.cleanup();
  });

  test('the factory gave a bwrap runner over the cached rootfs', () => {
    expect(runner).toBeInstanceOf(BwrapRunner);
    expect((runner as BwrapRunner).config.rootfs).toBe(rootfs.path);
  });

  test("a command runs inside, with the rootfs's gcc, which is the host's version", async () => {
    const real = 'usr/bin/x86_64-linux-gnu-gcc-12';
    const r = await sh(`command -v gcc; stat -c %i /${real}; gcc --version | head -n1; pwd`);
    expect(r.stderr).toBe('');
    const [where, inode, version, cwd] = r.stdout.trim().split('\n');
    expect(where).toBe('/usr/bin/gcc');
    // Bind mounts keep inode numbers: the gcc inside is the rootfs's file, not the host's.
    expect(Number(inode)).toBe((await lstat(path.join(rootfs.path, real))).ino);
    expect(Number(inode)).not.toBe((await lstat(`/${real}`)).ino);
    expect(version).toBe((await execa('gcc', ['--version'])).stdout.split('\n')[0]);
    expect(cwd).toBe(work.path);
  });

  test('there is no network: only a loopback interface, and connecting out fails', async () => {
    const r = await sh('cat /proc/net/dev');
    const interfaces = r.stdout
      .split('\n')
      .slice(2)
      .map((l) => l.split(':')[0]!.trim())
      .filter(Boolean);
    expect(interfaces).toEqual(['lo']);
    // An address, not a name: the failure must be the network's, not a missing resolver's.
    const connect = await runner.run(['python3', '-c', 'import socket; socket.create_connection(("151.101.2.132", 80), timeout=5)'], {
      cwd: '/',
    });
    expect(connect.exitCode).not.toBe(0);
    expect(connect.stderr).toMatch(/Network is unreachable/);
  });

  test('writes succeed only in the writable binds (and the private /tmp); the rootfs is never written', async () => {
    const attempts = [
      '/usr/klpforge-x',
      '/klpforge-x',
      '/root/klpforge-x',
      `${kernel.source}/klpforge-x`,
      `${kernel.fsections}/klpforge-x`,
    ];
    for (const target of attempts) {
      const r = await sh(`touch ${target}`);
      expect([target, r.exitCode, r.stderr]).toEqual([target, 1, `touch: cannot touch '${target}': Read-only file system\n`]);
      expect(existsSync(target)).toBe(false);
    }
    const ok = await sh(`echo made > ${work.path}/out && touch /tmp/klpforge-private && ls /tmp`);
    expect(ok.exitCode).toBe(0);
    expect(await readFile(path.join(work.path, 'out'), 'utf8')).toBe('made\n');
    // /tmp inside is the sandbox's own: it holds the work dir's mount point and what was written there, not the host's /tmp.
    expect(ok.stdout.split('\n').filter(Boolean).sort()).toEqual([path.basename(work.path), 'klpforge-private'].sort());
    expect(existsSync('/tmp/klpforge-private')).toBe(false);
    const written = await execa('find', [rootfs.path, '-newer', path.join(rootfs.path, STAMP_FILE), '-not', '-path', rootfs.path]);
    expect(written.stdout).toBe('');
  });

  test('a signal death is 128 + N, as on the host', async () => {
    expect((await sh('kill -TERM $$')).exitCode).toBe(128 + 15);
  });

  test(`recompiling ${OBJECT} inside gives the object the host recompile gives, byte for byte`, async () => {
    const record = index.objects.get(OBJECT)!;
    const common = { buildDir: kernel.fsections, recordedSourceDir: index.recordedSourceDir, viewRoot: index.recordedSourceDir };
    const [host, sandboxed] = await Promise.all([
      recompileObject(record, { ...common, outDir: path.join(work.path, 'host'), runner: new HostRunner() }),
      recompileObject(record, { ...common, outDir: path.join(work.path, 'bwrap'), runner }),
    ]);
    expect(sandboxed.output).toBe(path.join(work.path, 'bwrap', OBJECT));
    const [a, b, original] = await Promise.all([
      readFile(host.output),
      readFile(sandboxed.output),
      readFile(path.join(kernel.fsections, OBJECT)),
    ]);
    expect(b.length).toBeGreaterThan(1000);
    expect(b.equals(a)).toBe(true);
    // And both are the object kbuild built: the sandbox replays the build exactly.
    expect(b.equals(original)).toBe(true);
  });
});
