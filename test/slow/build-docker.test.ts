import { jest } from '@jest/globals';
import { chmod, mkdir, readFile, realpath, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import { DockerRunner } from '../../src/orchestrator/runners/container.js';
import { rootfsImageName } from '../../src/orchestrator/runners/docker-image.js';
import { ensureRootfs, type Rootfs } from '../../src/orchestrator/runners/rootfs.js';
import { type BuildRun, finished, privateCache, runBuild, startBuild } from '../helpers/build-runs.js';
import { type DockerDaemon, ensureDockerDaemon } from '../helpers/docker-daemon.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

/**
 * `klpforge build --runner docker` end to end on the Linux 6.1 fixture,
 * against Debian's docker.io daemon (started here if it is not running, and
 * stopped after only then). No --image: klpforge makes the image itself from
 * the bwrap runner's debootstrap rootfs, once, even with two builds asking
 * at the same time. Every compile (the compiler probe, the patched object,
 * the module, the lazy original's prepared tree) runs in a container, and
 * the module must be the same bytes as the host runner's. An interrupted
 * build leaves no container behind.
 *
 * The private cache's rootfs dir is the shared one (a symlink): the rootfs
 * takes minutes to make and is made once per machine. The image's tag is
 * moved aside first, so that klpforge makes it here; containers of other
 * runs keep theirs (they hold it by id).
 */
jest.setTimeout(10 * 60_000);

const kernel = fixtureKernel();
let daemon: DockerDaemon | undefined;
let cache: { dir: string; remove: () => Promise<void> };
let tmp: DirectoryResult;
let rootfs: Rootfs;
let image: string;
let movedAside: string | undefined;

const docker = (args: string[]) => execa('docker', args, { reject: false, stdin: 'ignore' });

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  daemon = await ensureDockerDaemon(tmp.path);
  rootfs = await ensureRootfs({ onProgress: (line) => process.stderr.write(`${line}\n`) });
  cache = await privateCache(kernel, 'docker');
  await symlink(path.dirname(rootfs.path), path.join(cache.dir, 'rootfs'));
  image = rootfsImageName(rootfs.path);
  const id = await docker(['image', 'inspect', '--format', '{{.Id}}', image]);
  if (id.exitCode === 0) {
    movedAside = `klpforge-test/moved-aside:${process.pid}`;
    expect((await docker(['tag', id.stdout.trim(), movedAside])).exitCode).toBe(0);
    expect((await docker(['rmi', image])).exitCode).toBe(0);
  }
}, 20 * 60_000);

afterAll(async () => {
  if (movedAside) await docker(['rmi', movedAside]);
  await cache?.remove();
  await tmp?.cleanup();
  await daemon?.stop();
}, 120_000);

interface Report {
  module: string;
  original: { buildDir: string };
}

function report(r: BuildRun): Report {
  if (r.exitCode !== 0) throw new Error(`build failed (exit ${r.exitCode}):\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as Report;
}

const out = (name: string) => path.join(tmp.path, name);
const inDocker = ['--json', '--runner', 'docker'];

/** Containers the daemon has (running ones only unless `all`) whose name contains `name`. */
async function containersNamed(name: string, all = true): Promise<string[]> {
  const r = await docker(['ps', ...(all ? ['-a'] : []), '--filter', `name=${name}`, '--format', '{{.Names}}']);
  expect(r.exitCode).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

/** Those klpforge process `pid` started (klpforge-PID-START-…). */
const containersOf = (pid: number, all = true) => containersNamed(`klpforge-${pid}-`, all);

test("two concurrent builds make the image from the rootfs once, and their modules are the host runner's, byte for byte", async () => {
  const [a, b] = await Promise.all([
    runBuild(kernel, cache.dir, out('docker-a'), { extra: inDocker }),
    runBuild(kernel, cache.dir, out('docker-b'), { extra: inDocker }),
  ]);
  const [ra, rb] = [report(a), report(b)];
  expect(
    [a, b].filter((r) =>
      r.stderr.includes(`klpforge: docker: importing ${path.join(cache.dir, 'rootfs', path.basename(rootfs.path))} as ${image}`),
    ),
  ).toHaveLength(1);
  const labels = await docker(['image', 'inspect', '--format', '{{json .Config.Labels}}', image]);
  expect(JSON.parse(labels.stdout)).toMatchObject({
    'klpforge.rootfs': path.basename(rootfs.path),
    'klpforge.rootfs.created': rootfs.stamp.created,
  });

  const onHost = report(await runBuild(kernel, cache.dir, out('host'), { extra: ['--json'] }));
  const bytes = await readFile(onHost.module);
  expect((await readFile(ra.module)).equals(bytes)).toBe(true);
  expect((await readFile(rb.module)).equals(bytes)).toBe(true);
  // And a build once the image is there imports nothing.
  const again = await runBuild(kernel, cache.dir, out('docker-c'), { extra: inDocker });
  expect((await readFile(report(again).module)).equals(bytes)).toBe(true);
  expect(again.stderr).not.toContain('docker: importing');
});

test("in a container: the command's status, a signal death as 128 + N, a missing command as 127, no network, the system read-only, /tmp writable and executable, binds at their own paths, the sandbox environment, the caller's uid", async () => {
  const ro = out('seen');
  const rw = out('written');
  await mkdir(ro);
  await mkdir(rw);
  await chmod(rw, 0o777);
  await writeFile(path.join(ro, 'in.txt'), 'from the host\n');
  const runner = new DockerRunner({ image, uid: 0, gid: 0, readOnly: [ro], writable: [rw] });
  const sh = (script: string, r = runner) => r.run(['sh', '-c', script], { cwd: rw, env: { X: 'y z' } });
  expect((await sh('exit 3')).exitCode).toBe(3);
  expect((await sh('kill -SEGV $$')).exitCode).toBe(139);
  expect((await runner.run(['no-such-command'], { cwd: rw })).exitCode).toBe(127);
  const probe = [
    'pwd',
    'echo "$X $HOME"',
    'id -u',
    'ls /sys/class/net',
    'touch /usr/x 2>/dev/null && echo system-writable',
    `touch ${ro}/x 2>/dev/null && echo ro-writable`,
    `cat ${ro}/in.txt`,
    'printf "#!/bin/sh\\necho ran from /tmp\\n" > /tmp/t && chmod +x /tmp/t && /tmp/t',
    'echo out > written-as-root',
  ].join('; ');
  const r = await sh(probe);
  expect([r.exitCode, r.stdout, r.stderr]).toEqual([0, `${rw}\ny z /tmp\n0\nlo\nfrom the host\nran from /tmp\n`, '']);
  expect(await readFile(path.join(rw, 'written-as-root'), 'utf8')).toBe('out\n');
  // Another caller's uid: files it writes are that uid's on the host.
  const user = new DockerRunner({ image, uid: 1000, gid: 1000, readOnly: [ro], writable: [rw] });
  expect((await sh('id -u; echo hi > written-as-user', user)).stdout).toBe('1000\n');
  expect((await stat(path.join(rw, 'written-as-user'))).uid).toBe(1000);
});

test.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const)('a build interrupted by %s while a container runs stops its containers: none is left', async (signal, code) => {
  // The lazy original prepares its tree in one long container (make modules_prepare); the interrupt keeps no prepared tree.
  const p = startBuild(kernel, cache.dir, out(`interrupted-${signal}`), { extra: [...inDocker, '--original', 'lazy'] });
  const pid = p.pid!;
  let running: string[] = [];
  for (let waited = 0; running.length === 0 && waited < 120_000; waited += 100) {
    await delay(100);
    running = await containersOf(pid, false);
  }
  expect(running.length).toBeGreaterThan(0);
  await delay(1000); // inside its command by now, not starting
  process.kill(pid, signal);
  const r = await finished(p);
  expect([r.exitCode, r.stderr]).toEqual([code, expect.stringContaining(`interrupted by ${signal}`)]);
  let left = await containersOf(pid);
  // A container its init's death stopped is removed by the daemon (--rm) a moment later.
  for (let waited = 0; left.length > 0 && waited < 10_000; waited += 200) {
    await delay(200);
    left = await containersOf(pid);
  }
  expect(left).toEqual([]);
});

test('a container whose client was killed is removed when klpforge exits (the exit hook alone: no run tag here); without the hook it would run on', async () => {
  const dist = path.join(REPO_ROOT, 'dist/src/orchestrator/runners');
  // Starts `sleep 120` in a container, SIGKILLs the docker client, and exits (KEEP: with the hook taken off).
  const script = `
    import { execFileSync } from 'node:child_process';
    import { DockerRunner } from '${dist}/container.js';
    import { liveContainers, removeLiveContainers } from '${dist}/container-reaper.js';
    const runner = new DockerRunner({ image: process.argv[1], uid: 0, gid: 0, readOnly: [], writable: [] });
    const run = runner.run(['sleep', '120'], { cwd: '/' });
    const ps = () => execFileSync('docker', ['ps', '-q', '--filter', 'name=klpforge-' + process.pid + '-'], { encoding: 'utf8' }).trim();
    while (ps() === '') await new Promise((r) => setTimeout(r, 100));
    // Our children: the docker client, and ps itself (gone by then).
    for (const child of execFileSync('ps', ['-o', 'pid=', '--ppid', String(process.pid)], { encoding: 'utf8' }).split('\\n').filter((l) => l.trim()))
      try { process.kill(Number(child), 'SIGKILL'); } catch {}
    const r = await run;
    console.log(JSON.stringify({ exitCode: r.exitCode, live: liveContainers() }));
    if (process.argv[2] === 'keep') process.removeListener('exit', removeLiveContainers);
    process.exit(0);
  `;
  const withHook = await execa(process.execPath, ['--input-type=module', '-e', script, image, 'reap'], { reject: false });
  expect(withHook.exitCode).toBe(0);
  const reaped = JSON.parse(withHook.stdout) as { exitCode: number; live: string[] };
  expect(reaped.exitCode).toBe(137);
  expect(reaped.live).toHaveLength(1);
  expect(await containersNamed(reaped.live[0]!)).toEqual([]);

  const without = await execa(process.execPath, ['--input-type=module', '-e', script, image, 'keep'], { reject: false });
  const kept = JSON.parse(without.stdout) as { live: string[] };
  try {
    expect(await containersNamed(kept.live[0]!, false)).toEqual(kept.live);
  } finally {
    await docker(['rm', '-f', ...kept.live]);
  }
});

test("the lazy original in containers: the tree is prepared and its original objects compiled there, and the module is the host's, byte for byte", async () => {
  const lazy = (runner: string[], name: string) =>
    runBuild(kernel, cache.dir, out(name), { extra: ['--json', '--original', 'lazy', ...runner] });
  const contained = report(await lazy(['--runner', 'docker'], 'lazy-docker'));
  expect(contained.original.buildDir.startsWith(path.join(await realpath(cache.dir), 'prepared'))).toBe(true);
  const onHost = report(await lazy([], 'lazy-host'));
  expect((await readFile(contained.module)).equals(await readFile(onHost.module))).toBe(true);
});
