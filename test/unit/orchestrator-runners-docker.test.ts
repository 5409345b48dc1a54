import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { KlpforgeError } from '../../src/util/errors.js';
import { DockerRunner } from '../../src/orchestrator/runners/container.js';
import {
  containerSettled,
  liveContainers,
  nextContainerName,
  removeLiveContainers,
  trackContainer,
} from '../../src/orchestrator/runners/container-reaper.js';
import { createRunner } from '../../src/orchestrator/runners/create-runner.js';
import {
  checkImageExists,
  ensureRootfsImage,
  importArgv,
  rootfsImageLabels,
  rootfsImageName,
  rootfsTarArgv,
} from '../../src/orchestrator/runners/docker-image.js';
import type { Rootfs } from '../../src/orchestrator/runners/rootfs.js';

/**
 * The docker runner's own parts, without a daemon: the image made from the
 * rootfs (name, labels, the import's command line, and the import itself
 * against a fake docker that keeps its images in a JSON file), the names
 * given to containers, and their removal when a client dies first.
 */

let tmp: DirectoryResult;
beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterEach(async () => {
  removeLiveContainers();
  await tmp.cleanup();
});

/**
 * A docker client that logs each call (one JSON argv a line) and keeps
 * images in STATE: `import` reads the tar on stdin (slowly, so concurrent
 * callers overlap), `tag`, `rmi`, `image inspect`, `info`, `rm`. FAIL names
 * a subcommand to fail.
 */
async function fakeDocker(fail = ''): Promise<{ program: string; calls: () => Promise<string[][]> }> {
  const program = path.join(tmp.path, 'docker');
  const log = path.join(tmp.path, 'calls.log');
  const state = path.join(tmp.path, 'state.json');
  await writeFile(
    program,
    `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + '\\n');
const st = fs.existsSync(${JSON.stringify(state)}) ? JSON.parse(fs.readFileSync(${JSON.stringify(state)}, 'utf8')) : { images: {}, tags: {} };
const save = () => fs.writeFileSync(${JSON.stringify(state)}, JSON.stringify(st));
if (args[0] === ${JSON.stringify(fail)}) { process.stderr.write(args[0] + ': fake failure\\nmore\\n'); process.exit(1); }
if (args[0] === 'info' || args[0] === 'rm') process.exit(0);
if (args[0] === 'image' && args[1] === 'inspect') {
  const id = st.tags[args[args.length - 1]];
  if (!id) { process.stderr.write('Error: No such image: ' + args[args.length - 1] + '\\n'); process.exit(1); }
  process.stdout.write(args[3] === '{{.Id}}' ? id : id + ' ' + JSON.stringify(st.images[id].labels));
  process.exit(0);
}
if (args[0] === 'import') {
  const labels = {};
  for (let i = 0; i < args.length; i++) {
    const m = args[i - 1] === '--change' && /^LABEL ([^=]+)=(.*)$/.exec(args[i]);
    if (m) labels[m[1]] = JSON.parse(m[2]);
  }
  let bytes = 0;
  process.stdin.on('data', (d) => (bytes += d.length));
  process.stdin.on('end', () => setTimeout(() => {
    const id = 'sha256:' + String(Object.keys(st.images).length + 1).padStart(64, '0');
    const now = fs.existsSync(${JSON.stringify(state)}) ? JSON.parse(fs.readFileSync(${JSON.stringify(state)}, 'utf8')) : st;
    now.images[id] = { labels, bytes };
    fs.writeFileSync(${JSON.stringify(state)}, JSON.stringify(now));
    process.stdout.write(id + '\\n');
  }, 300));
} else if (args[0] === 'tag') { st.tags[args[2]] = args[1]; save(); }
else if (args[0] === 'rmi') { delete st.images[args[1]]; save(); }
`,
  );
  await chmod(program, 0o755);
  return {
    program,
    calls: async () =>
      (await readFile(log, 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[]),
  };
}

async function fakeRootfs(created = '2026-01-02T03:04:05.000Z'): Promise<Rootfs> {
  const p = path.join(tmp.path, 'rootfs', 'bookworm-0123456789abcdef');
  await mkdir(path.join(p, 'usr/bin'), { recursive: true });
  await writeFile(path.join(p, 'usr/bin/gcc'), 'not really gcc\n');
  return {
    path: p,
    made: false,
    stamp: { recipe: 1, key: '0123456789abcdef', spec: {} as Rootfs['stamp']['spec'], installed: {}, created, seconds: 1 },
  };
}

async function errorOf(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KlpforgeError);
    return [(e as KlpforgeError).code, (e as KlpforgeError).message];
  }
  throw new Error('expected an error');
}

describe('the image made from the rootfs', () => {
  test('is named after the rootfs cache entry, labelled with where it came from, and imported with the bare rootfs its environment', async () => {
    const rootfs = await fakeRootfs();
    expect(rootfsImageName(rootfs.path)).toBe('klpforge/rootfs:bookworm-0123456789abcdef');
    const labels = rootfsImageLabels(rootfs);
    expect(labels).toEqual({
      'klpforge.rootfs': 'bookworm-0123456789abcdef',
      'klpforge.rootfs.created': '2026-01-02T03:04:05.000Z',
      'klpforge.image.recipe': '1',
    });
    expect(rootfsTarArgv('/c/rootfs/x')).toEqual(['tar', '-C', '/c/rootfs/x', '--numeric-owner', '-c', '.']);
    expect(importArgv('docker', labels, 'm')).toEqual([
      'docker',
      'import',
      '--message',
      'm',
      '--change',
      'LABEL klpforge.rootfs="bookworm-0123456789abcdef"',
      '--change',
      'LABEL klpforge.rootfs.created="2026-01-02T03:04:05.000Z"',
      '--change',
      'LABEL klpforge.image.recipe="1"',
      '--change',
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--change',
      'ENV HOME=/tmp',
      '-',
    ]);
  });

  test('two concurrent callers import once (the second waits on the lock and finds the tag); the tag is set only after the import', async () => {
    const docker = await fakeDocker();
    const rootfs = await fakeRootfs();
    const lines: string[] = [];
    const [a, b] = await Promise.all([
      ensureRootfsImage({ rootfs, program: docker.program, onProgress: (l) => lines.push(l) }),
      ensureRootfsImage({ rootfs, program: docker.program, onProgress: (l) => lines.push(l) }),
    ]);
    expect([a.made, b.made].sort()).toEqual([false, true]);
    expect(a.image).toBe('klpforge/rootfs:bookworm-0123456789abcdef');
    const verbs = (await docker.calls()).map((c) => c[0]);
    expect(verbs.filter((v) => v === 'import')).toHaveLength(1);
    expect(verbs.filter((v) => v === 'tag')).toHaveLength(1);
    expect(verbs.indexOf('tag')).toBeGreaterThan(verbs.indexOf('import'));
    const state = JSON.parse(await readFile(path.join(tmp.path, 'state.json'), 'utf8')) as {
      images: Record<string, { bytes: number }>;
    };
    // The tar of the rootfs reached the import.
    expect(Object.values(state.images)[0]!.bytes).toBeGreaterThan(1000);
    expect(lines.filter((l) => l.startsWith('docker: importing'))).toHaveLength(1);

    // Once there, it is only looked at.
    const again = await ensureRootfsImage({ rootfs, program: docker.program });
    expect(again.made).toBe(false);
    expect((await docker.calls()).filter((c) => c[0] === 'import')).toHaveLength(1);
  });

  test('an image of an older rootfs with the same name (made again since) is replaced, and the old one removed', async () => {
    const docker = await fakeDocker();
    await ensureRootfsImage({ rootfs: await fakeRootfs('2025-01-01T00:00:00.000Z'), program: docker.program });
    const made = await ensureRootfsImage({ rootfs: await fakeRootfs(), program: docker.program });
    expect(made.made).toBe(true);
    const calls = await docker.calls();
    expect(calls.filter((c) => c[0] === 'import')).toHaveLength(2);
    expect(calls.filter((c) => c[0] === 'rmi')).toEqual([['rmi', `sha256:${'1'.padStart(64, '0')}`]]);
  });

  test('a failed import or tag is one RUNNER_IMAGE_FAILED line saying what failed and what to do', async () => {
    const rootfs = await fakeRootfs();
    const imp = await fakeDocker('import');
    expect(await errorOf(ensureRootfsImage({ rootfs, program: imp.program }))).toEqual([
      'RUNNER_IMAGE_FAILED',
      `${imp.program} import of ${rootfs.path} as klpforge/rootfs:bookworm-0123456789abcdef failed (import: fake failure): check the daemon's disk (${imp.program} system df) and its log, or pass --image`,
    ]);
    await tmp.cleanup();
    tmp = await dir({ unsafeCleanup: true });
    const tag = await fakeDocker('tag');
    const [code, message] = await errorOf(ensureRootfsImage({ rootfs: await fakeRootfs(), program: tag.program }));
    expect(code).toBe('RUNNER_IMAGE_FAILED');
    expect(message).toMatch(
      / tag sha256:0+1 klpforge\/rootfs:bookworm-0123456789abcdef failed \(tag: fake failure\): check the daemon's log, or pass --image$/,
    );
    // The untagged import is not left behind.
    expect((await tag.calls()).filter((c) => c[0] === 'rmi')).toHaveLength(1);
  });

  test('a rootfs tar cannot read is refused, and the image imported from what it wrote is removed', async () => {
    const docker = await fakeDocker();
    const rootfs = await fakeRootfs();
    const gone = { ...rootfs, path: path.join(tmp.path, 'rootfs', 'bookworm-removed') };
    const [code, message] = await errorOf(ensureRootfsImage({ rootfs: gone, program: docker.program }));
    expect(code).toBe('RUNNER_IMAGE_FAILED');
    expect(message).toMatch(
      /^tar of .*bookworm-removed for .* import failed \(tar: .*No such file or directory\): it must be readable whole/,
    );
    const calls = await docker.calls();
    expect(calls.filter((c) => c[0] === 'rmi')).toHaveLength(1);
    expect(calls.filter((c) => c[0] === 'tag')).toHaveLength(0);
  });

  test('--image as given must exist: klpforge never pulls', async () => {
    const docker = await fakeDocker();
    expect(await errorOf(checkImageExists(docker.program, 'registry.example/kbuild:12'))).toEqual([
      'RUNNER_IMAGE_MISSING',
      `--image registry.example/kbuild:12: ${docker.program} has no such image (Error: No such image: registry.example/kbuild:12): ${docker.program} pull or import it first, or drop --image to let klpforge make one from its debootstrap rootfs`,
    ]);
  });
});

describe('createRunner docker', () => {
  test('no docker client: one line naming it, before anything else', async () => {
    expect(
      await errorOf(
        createRunner({ kind: 'docker', program: 'klpforge-no-such-docker', rootfsCacheDir: tmp.path, readOnly: [], writable: [] }),
      ),
    ).toEqual([
      'ORCH_RUNNER_UNAVAILABLE',
      'klpforge-no-such-docker is not installed: the docker runner needs docker with a working engine; install it (Debian: apt-get install docker.io), or use --runner bwrap',
    ]);
  });

  test('without --image and with the daemon down: the engine is checked before any rootfs or image is made', async () => {
    const docker = await fakeDocker('info');
    const [code, message] = await errorOf(
      createRunner({ kind: 'docker', program: docker.program, rootfsCacheDir: path.join(tmp.path, 'none'), readOnly: [], writable: [] }),
    );
    expect(code).toBe('ORCH_RUNNER_UNAVAILABLE');
    expect(message).toMatch(/info failed \(info: fake failure\): .*start the docker daemon/);
    expect((await docker.calls()).map((c) => c[0])).toEqual(['info']);
  });

  test('with --image: that image, checked to exist, runs as is', async () => {
    const docker = await fakeDocker();
    const [code] = await errorOf(createRunner({ kind: 'docker', image: 'nope:1', program: docker.program, readOnly: [], writable: [] }));
    expect(code).toBe('RUNNER_IMAGE_MISSING');
    await writeFile(
      path.join(tmp.path, 'state.json'),
      JSON.stringify({ images: { 'sha256:x': { labels: {} } }, tags: { 'mine:1': 'sha256:x' } }),
    );
    const runner = (await createRunner({
      kind: 'docker',
      image: 'mine:1',
      program: docker.program,
      readOnly: [],
      writable: [],
    })) as DockerRunner;
    expect(runner).toBeInstanceOf(DockerRunner);
    expect(runner.config.image).toBe('mine:1');
    expect(runner.argv(['true'], { cwd: '/' })[0]).toBe(docker.program);
  });

  test('engine messages: permission denied asks for the docker group, not for starting the daemon', async () => {
    const program = path.join(tmp.path, 'docker-denied');
    await writeFile(
      program,
      '#!/bin/sh\necho "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock" >&2\nexit 1\n',
    );
    await chmod(program, 0o755);
    const [, message] = await errorOf(createRunner({ kind: 'docker', image: 'i', program, readOnly: [], writable: [] }));
    expect(message).toMatch(
      /: the docker runner needs a working engine: run as root or as a member of the docker group, or use --runner bwrap$/,
    );
  });
});

describe('containers whose client dies first', () => {
  test("names carry the run's tag (or the pid) and count up", () => {
    const a = nextContainerName({ KLPFORGE_RUN: '123-456' });
    const b = nextContainerName({ KLPFORGE_RUN: '123-456' });
    expect(a).toMatch(/^klpforge-123-456-[0-9a-f]{6}-\d+$/);
    expect(Number(b.split('-').pop())).toBe(Number(a.split('-').pop()) + 1);
    expect(nextContainerName({})).toMatch(new RegExp(`^klpforge-${process.pid}-[0-9a-f]{6}-\\d+$`));
  });

  test('a run is forgotten when its client reports the command ended (< 128), kept when it may have been the client that died, and removed with rm -f', async () => {
    const docker = await fakeDocker();
    trackContainer('c-ok', docker.program);
    trackContainer('c-fail', docker.program);
    trackContainer('c-killed', docker.program);
    containerSettled('c-ok', 0);
    containerSettled('c-fail', 2);
    containerSettled('c-killed', 137);
    expect(liveContainers()).toEqual(['c-killed']);
    removeLiveContainers();
    expect(await docker.calls()).toEqual([['rm', '-f', 'c-killed']]);
    expect(liveContainers()).toEqual([]);
  });

  test('DockerRunner.run names its container and settles it by the exit status the client reports', async () => {
    const program = path.join(tmp.path, 'docker-run');
    const log = path.join(tmp.path, 'run.log');
    // exits with the status named by the command's first argument; a status of "kill" dies of SIGKILL, like a killed client.
    await writeFile(
      program,
      `#!/bin/sh\necho "$*" >> ${log}\nlast=$(eval echo \\\${$#})\n[ "$last" = kill ] && kill -KILL $$\nexit $last\n`,
    );
    await chmod(program, 0o755);
    const runner = new DockerRunner({ image: 'i', program, uid: 0, gid: 0, readOnly: [], writable: [] });
    expect((await runner.run(['exit-with', '3'], { cwd: '/' })).exitCode).toBe(3);
    expect(liveContainers()).toEqual([]);
    expect((await runner.run(['exit-with', 'kill'], { cwd: '/' })).exitCode).toBe(137);
    const names = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => /--name (\S+)/.exec(l)?.[1]);
    expect(names).toHaveLength(2);
    expect(names[0]).not.toBe(names[1]);
    expect(liveContainers()).toEqual([names[1]]);
  });
});
