import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { RUN_TAG_VAR } from '../../src/orchestrator/runners/orphans.js';
import {
  diskFullError,
  isDiskFull,
  keepNamedLogs,
  makeWorkDir,
  removeUntilGone,
  sweepStaleWorkDirs,
} from '../../src/cli/build/build-safety.js';
import { affectedObjects } from '../../src/orchestrator/kbuild/affected.js';
import type { BuildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { GeneratorError } from '../../src/klp/index.js';
import { OrchestratorError } from '../../src/orchestrator/errors.js';
import { BuildError } from '../../src/pipeline/errors.js';

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'klpforge-safety-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = execa('true');
  await child;
  return child.pid!;
}

describe('work dirs: named after their process, swept once it is gone', () => {
  test('a work dir is made under CACHE/work, named build-HOST-PID-START-XXXXXX (kept-… with -d)', async () => {
    const source = path.join(tmp, 'linux');
    await mkdir(source);
    const w = await makeWorkDir(path.join(tmp, 'cache'), source, false);
    expect(path.dirname(w)).toBe(path.join(tmp, 'cache/work'));
    expect(path.basename(w)).toMatch(new RegExp(`^build-[0-9a-f]{8}-${process.pid}-\\d+-[A-Za-z0-9]{6}$`));
    expect(path.basename(await makeWorkDir(path.join(tmp, 'cache'), source, true))).toMatch(
      new RegExp(`^kept-[0-9a-f]{8}-${process.pid}-`),
    );
  });

  test('the next work dir sweeps those of dead processes (and of a reused pid), never a live one, a kept one or a foreign name', async () => {
    const source = path.join(tmp, 'linux');
    await mkdir(source);
    const mine = await makeWorkDir(path.join(tmp, 'cache'), source, false);
    const [, host, , start] = /^build-([0-9a-f]+)-(\d+)-(\d+)-/.exec(path.basename(mine))!;
    const work = path.dirname(mine);
    const dead = await deadPid();
    const names = {
      dead: `build-${host}-${dead}-${start}-aaaaaa`,
      reused: `build-${host}-${process.pid}-1-bbbbbb`, // our pid, but a process that started at tick 1: not us
      otherHost: `build-00000000-${dead}-${start}-cccccc`,
      kept: `kept-${host}-${dead}-${start}-dddddd`,
      legacy: 'build-eeeeee',
      oldLegacy: 'build-gggggg', // the naming before work dirs carried their process: swept once a day old
    };
    for (const n of Object.values(names)) await mkdir(path.join(work, n, 'patched/source'), { recursive: true });
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    await utimes(path.join(work, names.oldLegacy), twoDaysAgo, twoDaysAgo);
    const removed = await sweepStaleWorkDirs(work);
    expect(removed.sort()).toEqual([names.dead, names.reused, names.oldLegacy].sort());
    expect((await readdir(work)).sort()).toEqual([path.basename(mine), names.otherHost, names.kept, names.legacy].sort());
  });

  test('an orphan of the dead run still writing into its work dir is stopped before the dir is removed; other processes there are not', async () => {
    const source = path.join(tmp, 'linux');
    await mkdir(source);
    const mine = await makeWorkDir(path.join(tmp, 'cache'), source, false);
    const [, host, , start] = /^build-([0-9a-f]+)-(\d+)-(\d+)-/.exec(path.basename(mine))!;
    const dead = await deadPid();
    const stale = path.join(path.dirname(mine), `build-${host}-${dead}-${start}-ffffff`);
    await mkdir(stale);
    // What the dead run started carries its tag (every command klpforge runs inherits it); a user's shell in the dir does not.
    const writer = execa('sh', ['-c', `while :; do : > "f.$$.$(date +%N)"; sleep 0.01; done`], {
      cwd: stale,
      reject: false,
      env: { [RUN_TAG_VAR]: `${dead}-${start}` },
    });
    const bystander = execa('sleep', ['30'], { cwd: stale, reject: false });
    await new Promise((r) => setTimeout(r, 100));
    expect(await sweepStaleWorkDirs(path.dirname(mine))).toEqual([path.basename(stale)]);
    const r = await writer;
    expect(r.signal).toBe('SIGKILL');
    expect(bystander.exitCode).toBeNull(); // still running
    bystander.kill('SIGKILL');
    await bystander;
    expect(await readdir(path.dirname(mine))).toEqual([path.basename(mine)]);
  });
});

test('removeUntilGone: a work dir that code still unwinding brings back is removed again', async () => {
  const work = path.join(tmp, 'work');
  await mkdir(path.join(work, 'likely/generate'), { recursive: true });
  // What an attempt stopped mid-way may still do on its way out: create its scratch dir again, a moment later.
  const late = new Promise<void>((resolve, reject) => {
    setTimeout(() => {
      mkdir(path.join(work, 'likely/generate/module'), { recursive: true }).then(() => resolve(), reject);
    }, 30);
  });
  await removeUntilGone(work, 60);
  await late;
  await new Promise((r) => setTimeout(r, 20));
  // It came back after the first removal; the second one took it, and nothing brought it back after.
  await expect(readdir(work)).rejects.toThrow(/ENOENT/);
});

describe('a full disk is said as such', () => {
  const places = (dir: string) => [{ dir, what: 'the output dir', remedy: 'free space there or pass another -o/--output' }];

  test('ENOSPC from Node, or a tool saying "No space left on device", is recognised', () => {
    expect(isDiskFull(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }))).toBe(true);
    expect(
      isDiskFull(new OrchestratorError('ORCH_COMPILE_FAILED', 'x.o: fatal error: closing dependency file .x.o.d: No space left on device')),
    ).toBe(true);
    expect(isDiskFull(new OrchestratorError('ORCH_COMPILE_FAILED', 'x.c:1:1: error: expected identifier'))).toBe(false);
  });

  test('on a nearly full filesystem, a failed compile is put down to it, a refusal or a bad .config is not', async () => {
    const mount = path.join(tmp, 'small');
    await mkdir(mount);
    // A private mount namespace: the tmpfs is this shell's alone. Needs root (unshare, mount); skipped otherwise.
    if (process.getuid?.() !== 0) return;
    const script = `mount -t tmpfs -o size=1m t "$1" && dd if=/dev/zero of="$1/fill" bs=4k count=200 2>/dev/null && node --input-type=module -e "$2" "$1"`;
    const code = `
      const { diskFullError } = await import(${JSON.stringify(path.resolve('dist/src/cli/build/build-safety.js'))});
      const { OrchestratorError } = await import(${JSON.stringify(path.resolve('dist/src/orchestrator/errors.js'))});
      const { BuildError } = await import(${JSON.stringify(path.resolve('dist/src/pipeline/errors.js'))});
      const places = [{ dir: process.argv[1], what: 'the output dir', remedy: 'pass another -o' }];
      const compile = await diskFullError(new OrchestratorError('ORCH_COMPILE_FAILED', 'x.o: objtool: cannot write data'), places, 'patched objects');
      const refusal = await diskFullError(new BuildError('BUILD_REFUSED', 'cannot carry', 2), places, 'diff');
      const config = await diskFullError(new OrchestratorError('ORCH_PATCH_DOES_NOT_APPLY', 'rebase it'), places, 'checks');
      console.log(JSON.stringify([compile?.message, refusal?.message ?? null, config?.message ?? null]));`;
    const r = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', mount, code]);
    const [compile, refusal, config] = JSON.parse(r.stdout) as [string, null, null];
    expect(compile).toMatch(
      new RegExp(
        `^a step failed with the disk nearly full \\(patched objects stage\\): the output dir ${mount} is on a filesystem with 2\\d\\d KiB free: pass another -o\n  x.o: objtool: cannot write data$`,
      ),
    );
    expect(refusal).toBeNull();
    expect(config).toBeNull();
  });

  test('with room on every filesystem, an ordinary failure is left as it is', async () => {
    expect(
      await diskFullError(new OrchestratorError('ORCH_COMPILE_FAILED', 'x.c:1: error: y'), places(tmp), 'patched objects'),
    ).toBeUndefined();
  });

  test('ENOSPC with room everywhere still gets one line naming the filesystems to check, the original error as detail', async () => {
    const e = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const d = await diskFullError(e, places(path.join(tmp, 'not-yet-made')), 'module');
    expect(d).toBeInstanceOf(BuildError);
    expect(d!.code).toBe('BUILD_DISK_FULL');
    expect(d!.exitCode).toBe(1);
    expect(d!.message).toBe(
      `no space left on device (module stage): free space on the filesystems of the output dir ${path.join(tmp, 'not-yet-made')}\n  ENOSPC: no space left on device, write`,
    );
  });
});

describe('logs named in an error outlive the work dir', () => {
  test('a log under the work dir is copied to CACHE/logs and the message (and the problem list) names the copy', async () => {
    const work = path.join(tmp, 'work/build-x');
    const log = path.join(work, 'generate/module/build.log');
    await mkdir(path.dirname(log), { recursive: true });
    await writeFile(log, 'make: *** [modules] Error 2\n');
    const e = new GeneratorError([{ code: 'MODULE_BUILD_FAILED', message: `kbuild failed to build livepatch-x.ko (exit 2; log: ${log})` }]);
    await keepNamedLogs(e, work, path.join(tmp, 'cache/logs'));
    const kept = path.join(tmp, 'cache/logs/build-x-generate-module-build.log');
    expect(e.message).toBe(`kbuild failed to build livepatch-x.ko (exit 2; log: ${kept})`);
    expect(e.problems[0]!.message).toContain(kept);
    expect(await readFile(kept, 'utf8')).toBe('make: *** [modules] Error 2\n');
  });
});

describe('affected objects: never-livepatchable directories', () => {
  const index = { bySource: new Map(), byDependency: new Map(), objects: new Map() } as unknown as BuildIndex;

  test('a boot-code or vdso file no object of the build compiles is not livepatchable, named by its source path; other unbuilt files are outside', () => {
    expect(
      affectedObjects(index, ['arch/x86/boot/main.c', 'arch/x86/entry/vdso/vdso32/note.S', 'lib/bch.c', 'arch/x86/boot/Makefile']),
    ).toEqual({
      rebuild: [],
      notLivepatchable: [
        { object: 'arch/x86/boot/main.c', because: ['arch/x86/boot/main.c'], reason: 'boot' },
        { object: 'arch/x86/entry/vdso/vdso32/note.S', because: ['arch/x86/entry/vdso/vdso32/note.S'], reason: 'vdso' },
      ],
      outside: ['lib/bch.c'],
      buildInputs: ['arch/x86/boot/Makefile'],
    });
  });
});
