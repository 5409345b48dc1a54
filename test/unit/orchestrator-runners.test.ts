import { writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { dir } from 'tmp-promise';
import { OrchestratorError } from '../../src/orchestrator/errors.js';
import { HostRunner, type Runner } from '../../src/orchestrator/runners/runner.js';
import { checkContainerEngine } from '../../src/orchestrator/runners/availability.js';
import { planMounts } from '../../src/orchestrator/runners/binds.js';
import { BwrapRunner, bwrapArgv, rootfsLayoutArgs, type ListRootfsDir, type RootfsEntry } from '../../src/orchestrator/runners/bwrap.js';
import { containerArgv, type ContainerRunner, DockerRunner, PodmanRunner } from '../../src/orchestrator/runners/container.js';
import { createRunner } from '../../src/orchestrator/runners/create-runner.js';
import { ROOTFS_BASE_ENV, sandboxEnv } from '../../src/orchestrator/runners/sandbox-env.js';

/** A rootfs as debootstrap lays out bookworm's top level (merged /usr), plus what /root holds. */
const FAKE_ROOTFS: Record<string, RootfsEntry[]> = {
  '/': [
    { name: 'usr', kind: 'dir' },
    { name: 'bin', kind: 'symlink', target: 'usr/bin' },
    { name: 'lib', kind: 'symlink', target: 'usr/lib' },
    { name: 'etc', kind: 'dir' },
    { name: 'root', kind: 'dir' },
    { name: 'home', kind: 'dir' },
    { name: 'tmp', kind: 'dir' },
    { name: 'proc', kind: 'dir' },
    { name: 'dev', kind: 'dir' },
    { name: 'var', kind: 'dir' },
  ],
  '/root': [
    { name: '.bashrc', kind: 'other' },
    { name: '.cache', kind: 'dir' },
  ],
  '/root/.cache': [{ name: 'pip', kind: 'dir' }],
  '/var': [
    { name: 'lib', kind: 'dir' },
    { name: 'run', kind: 'symlink', target: '/run' },
  ],
};
const fakeList: ListRootfsDir = (d) => FAKE_ROOTFS[d] ?? [];

const BINDS = { readOnly: ['/root/.cache/klpforge/src/linux'], writable: ['/home/u/work', '/tmp/klp-work'] };

describe('bwrap command line', () => {
  test('rootfs entries are bound one by one; the directories a bind lands in are rebuilt, never written', () => {
    expect(
      rootfsLayoutArgs('/R', ['/proc', '/dev', '/tmp', '/root/.cache/klpforge/src/linux', '/home/u/work', '/var/run/x'], fakeList),
    ).toEqual([
      '--symlink',
      'usr/bin',
      '/bin',
      '--ro-bind',
      '/R/etc',
      '/etc',
      // /home holds a bind: a directory of the sandbox's own, with the rootfs's entries (none) inside.
      '--dir',
      '/home',
      '--symlink',
      'usr/lib',
      '/lib',
      '--dir',
      '/root',
      '--ro-bind',
      '/R/root/.bashrc',
      '/root/.bashrc',
      '--dir',
      '/root/.cache',
      '--ro-bind',
      '/R/root/.cache/pip',
      '/root/.cache/pip',
      '--ro-bind',
      '/R/usr',
      '/usr',
      // A symlink on the way to a bind becomes a real directory (the host path is one), not followed.
      '--dir',
      '/var',
      '--ro-bind',
      '/R/var/lib',
      '/var/lib',
      '--dir',
      '/var/run',
    ]);
  });

  test('the whole command: layout, own /proc /dev /tmp, binds parents first, read-only root, no network, clean env, cwd', () => {
    const env = { ...ROOTFS_BASE_ENV, KBUILD_BUILD_TIMESTAMP: 'x y' };
    expect(bwrapArgv({ rootfs: '/R', ...BINDS }, ['sh', '-c', 'gcc -c a.c'], '/home/u/work/build', env, fakeList)).toEqual([
      'bwrap',
      '--symlink',
      'usr/bin',
      '/bin',
      '--ro-bind',
      '/R/etc',
      '/etc',
      '--dir',
      '/home',
      '--symlink',
      'usr/lib',
      '/lib',
      '--dir',
      '/root',
      '--ro-bind',
      '/R/root/.bashrc',
      '/root/.bashrc',
      '--dir',
      '/root/.cache',
      '--ro-bind',
      '/R/root/.cache/pip',
      '/root/.cache/pip',
      '--ro-bind',
      '/R/usr',
      '/usr',
      '--ro-bind',
      '/R/var',
      '/var',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--tmpfs',
      '/tmp',
      '--bind',
      '/tmp/klp-work',
      '/tmp/klp-work',
      '--bind',
      '/home/u/work',
      '/home/u/work',
      '--ro-bind',
      '/root/.cache/klpforge/src/linux',
      '/root/.cache/klpforge/src/linux',
      '--remount-ro',
      '/',
      '--unshare-net',
      '--unshare-ipc',
      '--unshare-pid',
      '--unshare-uts',
      '--cap-drop',
      'ALL',
      '--die-with-parent',
      '--new-session',
      '--clearenv',
      '--setenv',
      'PATH',
      '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--setenv',
      'HOME',
      '/tmp',
      '--setenv',
      'KBUILD_BUILD_TIMESTAMP',
      'x y',
      '--chdir',
      '/home/u/work/build',
      '--',
      'sh',
      '-c',
      'gcc -c a.c',
    ]);
  });
});

describe('bind paths', () => {
  test('parents are mounted before what lies under them; a path given both ways is writable; trailing slashes do not count', () => {
    expect(planMounts({ readOnly: ['/a/b/c', '/a', '/x/y/'], writable: ['/a/b', '/x/y'] })).toEqual([
      { path: '/a', writable: false },
      { path: '/a/b', writable: true },
      { path: '/x/y', writable: true },
      { path: '/a/b/c', writable: false },
    ]);
  });

  test('a relative path or the host root is refused', () => {
    expect(() => planMounts({ readOnly: ['linux'], writable: [] })).toThrow('linux: a sandbox bind path must be absolute');
    expect(() => planMounts({ readOnly: [], writable: ['/'] })).toThrow(/^\/: binding the host's whole root/);
  });
});

describe('podman and docker command lines', () => {
  const base = { image: 'registry.example/kbuild:12', ...BINDS };

  test('docker: no network, read-only image, an init, the caller as user, binds at their own paths, env, cwd, the argv as entrypoint + args', () => {
    expect(
      containerArgv({ ...base, engine: 'docker', uid: 1000, gid: 100 }, ['sh', '-c', 'gcc -c a.c'], '/home/u/work/build', {
        SOURCE_DATE_EPOCH: '1',
        A: 'b c',
      }),
    ).toEqual([
      'docker',
      'run',
      '--rm',
      '--pull',
      'never',
      '--network',
      'none',
      '--read-only',
      '--tmpfs',
      '/tmp:exec,mode=1777',
      '--init',
      '--cap-drop',
      'ALL',
      '--log-driver',
      'none',
      '--security-opt',
      'label=disable',
      '--user',
      '1000:100',
      '-v',
      '/tmp/klp-work:/tmp/klp-work:rw',
      '-v',
      '/home/u/work:/home/u/work:rw',
      '-v',
      '/root/.cache/klpforge/src/linux:/root/.cache/klpforge/src/linux:ro',
      '-e',
      'SOURCE_DATE_EPOCH=1',
      '-e',
      'A=b c',
      '-w',
      '/home/u/work/build',
      '--entrypoint',
      'sh',
      'registry.example/kbuild:12',
      '-c',
      'gcc -c a.c',
    ]);
  });

  test("rootless podman keeps the caller's uid on the binds (--userns=keep-id); as root both engines run as root", () => {
    const podman = containerArgv({ ...base, engine: 'podman', uid: 1000, gid: 100 }, ['make'], '/home/u/work', {});
    expect(podman).toEqual([
      'podman',
      'run',
      '--rm',
      '--pull',
      'never',
      '--network',
      'none',
      '--read-only',
      '--tmpfs',
      '/tmp:exec,mode=1777',
      '--init',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'label=disable',
      '--userns=keep-id',
      '--user',
      '1000:100',
      '-v',
      '/tmp/klp-work:/tmp/klp-work:rw',
      '-v',
      '/home/u/work:/home/u/work:rw',
      '-v',
      '/root/.cache/klpforge/src/linux:/root/.cache/klpforge/src/linux:ro',
      '-w',
      '/home/u/work',
      '--entrypoint',
      'make',
      'registry.example/kbuild:12',
    ]);
    for (const engine of ['podman', 'docker'] as const) {
      const argv = containerArgv({ ...base, engine, uid: 0, gid: 0 }, ['true'], '/', {});
      expect(argv.slice(argv.indexOf('--user') - 1, argv.indexOf('--user') + 2)).toEqual(['label=disable', '--user', '0:0']);
    }
  });

  test('runner classes pass the sandbox environment (host build variables + the given env), not the whole host environment', () => {
    const saved = process.env['KBUILD_BUILD_USER'];
    process.env['KBUILD_BUILD_USER'] = 'builder';
    try {
      const docker = new DockerRunner({ ...base, uid: 1, gid: 2 }).argv(['true'], { cwd: '/w', env: { X: '1' } });
      const es = docker.flatMap((a, i) => (docker[i - 1] === '-e' ? [a] : []));
      expect(es).toEqual(['KBUILD_BUILD_USER=builder', 'X=1']);
      expect(new PodmanRunner({ ...base, uid: 1, gid: 2 }).argv(['true'], { cwd: '/w' })[0]).toBe('podman');
    } finally {
      if (saved === undefined) delete process.env['KBUILD_BUILD_USER'];
      else process.env['KBUILD_BUILD_USER'] = saved;
    }
  });

  test('a bind path with a colon cannot be said with -v: refused with the way out', () => {
    expect(() => containerArgv({ ...base, engine: 'docker', readOnly: ['/src/linux:6.1'], uid: 0, gid: 0 }, ['true'], '/', {})).toThrow(
      "/src/linux:6.1: a path with ':' cannot be bound by docker -v: move or symlink it to a path without one",
    );
  });
});

test('a sandboxed runner made to see one more path (the original build, known after the cache lookup) binds it read-only; the first is unchanged; the host runner has no such step', () => {
  const bw = new BwrapRunner({ rootfs: '/nonexistent-rootfs', ...BINDS });
  const argvOf = (r: BwrapRunner | ContainerRunner) => r.argv(['true'], { cwd: '/tmp/klp-work' }).join(' ');
  expect(argvOf(bw.seeing(['/srv/kernels/6.1/build']))).toContain('--ro-bind /srv/kernels/6.1/build /srv/kernels/6.1/build');
  expect(argvOf(bw)).not.toContain('/srv/kernels');
  const pod = new PodmanRunner({ image: 'i', uid: 0, gid: 0, ...BINDS });
  expect(argvOf(pod.seeing(['/srv/kernels/6.1/build']))).toContain('-v /srv/kernels/6.1/build:/srv/kernels/6.1/build:ro');
  expect((new HostRunner() as Runner).seeing).toBeUndefined();
});

test('sandbox environment: only build-relevant host variables pass, the given env wins', () => {
  expect(
    sandboxEnv(
      { TZ: 'UTC' },
      { PATH: '/opt/bin', HOME: '/home/u', LANG: 'de_DE.UTF-8', SOURCE_DATE_EPOCH: '5', KBUILD_BUILD_HOST: 'h', TZ: 'Europe/Paris' },
    ),
  ).toEqual({ SOURCE_DATE_EPOCH: '5', KBUILD_BUILD_HOST: 'h', TZ: 'UTC' });
});

describe('createRunner', () => {
  const opts = { readOnly: [], writable: [] };
  const code = async (p: Promise<unknown>): Promise<[string, string]> => {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(OrchestratorError);
      return [(e as OrchestratorError).code, (e as OrchestratorError).message];
    }
    throw new Error('expected an error');
  };

  test('host is the host runner; options of other runners are refused, not ignored', async () => {
    expect(await createRunner({ kind: 'host', ...opts })).toBeInstanceOf(HostRunner);
    expect(await code(createRunner({ kind: 'host', image: 'x', ...opts }))).toEqual([
      'ORCH_RUNNER_OPTIONS',
      '--image is for --runner podman or docker, not host: drop it',
    ]);
    expect(await code(createRunner({ kind: 'podman', rootfs: '/r', ...opts }))).toEqual([
      'ORCH_RUNNER_OPTIONS',
      '--rootfs is for --runner bwrap, not podman: drop it',
    ]);
    expect(await code(createRunner({ kind: 'podman', ...opts }))).toEqual([
      'ORCH_RUNNER_OPTIONS',
      '--runner podman needs --image: an image with the compiler that built the target kernel',
    ]);
    expect((await code(createRunner({ kind: 'lxc' as 'host', ...opts })))[1]).toBe(
      '--runner lxc: not a runner: use one of host, bwrap, podman, docker',
    );
  });

  test('a missing bind path or a rootfs that is not one is named before anything runs', async () => {
    expect(await code(createRunner({ kind: 'docker', image: 'i', readOnly: ['/no/such/klpforge/dir'], writable: [] }))).toEqual([
      'ORCH_RUNNER_OPTIONS',
      '/no/such/klpforge/dir: no such file or directory to bind into the sandbox: create it or fix the path',
    ]);
    const tmp = await dir({ unsafeCleanup: true });
    try {
      const [c, m] = await code(createRunner({ kind: 'bwrap', rootfs: tmp.path, ...opts }));
      expect([c, m]).toEqual([
        'ORCH_RUNNER_OPTIONS',
        `--rootfs ${tmp.path}: not a root filesystem (no bin/sh): give a directory made by debootstrap, or drop --rootfs to let klpforge make one`,
      ]);
    } finally {
      await tmp.cleanup();
    }
  });

  test('an engine that is not installed, or installed without a working engine, is one actionable line', async () => {
    expect(await code(checkContainerEngine('podman', 'klpforge-no-such-podman'))).toEqual([
      'ORCH_RUNNER_UNAVAILABLE',
      'klpforge-no-such-podman is not installed: the podman runner needs podman with a working engine; install it, or use --runner bwrap',
    ]);
    const tmp = await dir({ unsafeCleanup: true });
    try {
      // What docker's client prints when its daemon is not running.
      const fake = path.join(tmp.path, 'docker');
      await writeFile(
        fake,
        '#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2\nexit 1\n',
      );
      await chmod(fake, 0o755);
      expect(await code(checkContainerEngine('docker', fake))).toEqual([
        'ORCH_RUNNER_UNAVAILABLE',
        `${fake} info failed (Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?): the docker runner needs a working engine: start the docker daemon (systemctl start docker; without systemd, as root: dockerd --iptables=false --bridge=none &), or use --runner bwrap`,
      ]);
    } finally {
      await tmp.cleanup();
    }
  });
});
