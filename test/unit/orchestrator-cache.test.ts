import { chmod, mkdir, readFile, readdir, realpath, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import { cacheLayout, STAMP_FILE, type BuildStamp } from '../../src/orchestrator/original/cache-entries.js';
import { cacheKey, computeCacheKey, type CacheKeyInputs } from '../../src/orchestrator/original/cache-key.js';
import { acquireLock, processStartTime, tryAcquireLock, type LockHolder } from '../../src/orchestrator/original/cache-lock.js';
import { readKernelConfig } from '../../src/orchestrator/kbuild/kconfig.js';
import type { BuildProgress } from '../../src/orchestrator/kbuild/make-progress.js';
import { adoptBuild, ensureOriginalBuild } from '../../src/orchestrator/original/original-cache.js';
import { HostRunner, type Runner } from '../../src/orchestrator/runners/runner.js';
import { SetupError } from '../../src/orchestrator/setup-errors.js';
import { digestTree } from '../../src/orchestrator/original/tree-digest.js';
import { RUN_TAG_VAR } from '../../src/orchestrator/runners/orphans.js';

/**
 * The original-build cache with a fake `make` (a shell script first on the
 * runner's PATH) that behaves like kbuild as far as the cache can tell:
 * `olddefconfig` keeps .config, a build prints `  CC …` lines and leaves
 * Makefile, source, vmlinux.o and Module.symvers in O=. No kernel is built.
 */
const FAKE_MAKE = `#!/bin/sh
src= out= targets=
while [ $# -gt 0 ]; do
  case "$1" in
    -C) src=$2; shift ;;
    O=*) out=\${1#O=} ;;
    -*|*=*) ;;
    *) targets="$targets $1" ;;
  esac
  shift
done
echo "pwd=$(pwd) O=$out targets=$targets args=$*" >> "$FAKE_STATE/calls"
case "$targets" in
  *olddefconfig*) [ -n "$FAKE_OLDDEFCONFIG_ADD" ] && echo "$FAKE_OLDDEFCONFIG_ADD" >> "$out/.config"; exit 0 ;;
esac
i=0
while [ $i -lt \${FAKE_STEPS:-12} ]; do
  i=$((i + 1)); echo "  CC      obj$i.o"; [ $((i % 4)) -eq 0 ] && sleep 0.2
done
echo "  AR      built-in.a"
if [ -n "$FAKE_FAIL" ]; then echo "fs/proc/cmdline.c:7:1: error: expected ';' before '}' token"; [ "$FAKE_FAIL" = disk ] && echo "No space left on device"; exit 2; fi
echo "include $src/Makefile" > "$out/Makefile"; ln -sfn "$src" "$out/source"
: > "$out/vmlinux.o"; : > "$out/Module.symvers"
echo "  LD      vmlinux.o"
`;

const CONFIG = 'CONFIG_MODULES=y\nCONFIG_LIVEPATCH=y\n# CONFIG_LTO_CLANG is not set\nCONFIG_NR_CPUS=4\n';

describe('original-build cache (fake make)', () => {
  let tmp: DirectoryResult;
  let sourceDir: string;
  let configFile: string;
  let cacheDir: string;
  let state: string;
  let runner: Runner;
  const env: Record<string, string> = {};

  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
    sourceDir = path.join(tmp.path, 'linux');
    await mkdir(path.join(sourceDir, 'fs/proc'), { recursive: true });
    await writeFile(path.join(sourceDir, 'Makefile'), 'VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\n');
    await writeFile(path.join(sourceDir, 'fs/proc/cmdline.c'), 'int x;\n');
    configFile = path.join(tmp.path, 'my.config');
    await writeFile(configFile, CONFIG);
    cacheDir = path.join(tmp.path, 'cache');
    state = path.join(tmp.path, 'state');
    const bin = path.join(tmp.path, 'bin');
    await mkdir(state);
    await mkdir(bin);
    await writeFile(path.join(bin, 'make'), FAKE_MAKE);
    await chmod(path.join(bin, 'make'), 0o755);
    for (const k of Object.keys(env)) delete env[k];
    const host = new HostRunner();
    runner = {
      run: (argv, o) => host.run(argv, { ...o, env: { ...o.env, ...env, PATH: `${bin}:${process.env.PATH}`, FAKE_STATE: state } }),
    };
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  const makeCalls = async (): Promise<string[]> =>
    (await readFile(path.join(state, 'calls'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const ensure = (extra: Partial<Parameters<typeof ensureOriginalBuild>[0]> = {}) =>
    ensureOriginalBuild({ sourceDir, config: configFile, cacheDir, runner, jobs: 2, ...extra });
  const keyNow = async (): Promise<string> =>
    (await computeCacheKey({ sourceDir, config: await readKernelConfig(configFile), runner, cwd: tmp.path })).key;

  test('a miss builds in place under builds/KEY-RAND (make O= is the final path), commits, and the next call hits without make', async () => {
    const progress: BuildProgress[] = [];
    const first = await ensure({ onProgress: (p) => progress.push(p) });
    const layout = cacheLayout(await realpath(cacheDir));
    expect(first.hit).toBe(false);
    expect(first.key).toBe(await keyNow());
    expect(path.dirname(first.buildDir)).toBe(layout.builds);
    expect(path.basename(first.buildDir)).toMatch(new RegExp(`^${first.key}-[0-9a-f]{8}$`));
    expect(first.configChanges).toEqual([]);

    const calls = await makeCalls();
    expect(calls).toEqual([
      `pwd=${first.buildDir} O=${first.buildDir} targets= olddefconfig args=`,
      `pwd=${first.buildDir} O=${first.buildDir} targets= vmlinux modules args=`,
    ]);
    const log = await readFile(first.logFile!, 'utf8');
    expect(log).toContain(
      `# klpforge: make -C ${await realpath(sourceDir)} O=${first.buildDir} -j2 'KCFLAGS=-ffunction-sections -fdata-sections' vmlinux modules`,
    );
    expect(log).toContain('  CC      obj12.o');

    const stamp = JSON.parse(await readFile(path.join(first.buildDir, STAMP_FILE), 'utf8')) as BuildStamp;
    expect(stamp).toMatchObject({ key: first.key, objects: 13, enabledOptions: 2 });
    const pointer = JSON.parse(await readFile(path.join(layout.entries, `${first.key}.json`), 'utf8'));
    expect(pointer).toMatchObject({ format: 1, key: first.key, buildDir: first.buildDir, adopted: false, objects: 13 });
    expect(await readdir(layout.locks)).toEqual([]); // released

    // Progress: starts at 0 of the estimate (no earlier entry: 500 + 2 per enabled option), never goes back, ends exact.
    expect(progress[0]).toEqual({ compiled: 0, total: 504 });
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.compiled).toBeGreaterThanOrEqual(progress[i - 1]!.compiled);
    expect(progress.length).toBeGreaterThan(2);
    expect(progress[progress.length - 1]).toEqual({ compiled: 13, total: 13 });

    const second = await ensure();
    expect(second).toEqual({ key: first.key, buildDir: first.buildDir, hit: true, adopted: false, configChanges: [] });
    expect(await makeCalls()).toHaveLength(2);
  });

  test('the key: same inputs same key; a touched source file or another compiler changes it; config comments do not', async () => {
    const k1 = await keyNow();
    expect(await keyNow()).toBe(k1);
    await writeFile(configFile, `# my comment\n${CONFIG.split('\n').reverse().join('\n')}\n# CONFIG_UNRELATED is not set\n`);
    expect(await keyNow()).toBe(k1);
    const t = new Date(Date.now() - 3600_000);
    await utimes(path.join(sourceDir, 'fs/proc/cmdline.c'), t, t);
    const k2 = await keyNow();
    expect(k2).not.toBe(k1);
    await writeFile(configFile, `${CONFIG}CONFIG_MODULE_UNLOAD=y\n`);
    expect(await keyNow()).not.toBe(k2);

    const base: CacheKeyInputs = {
      recipe: 1,
      sourceDir: '/src',
      tree: 't',
      config: 'c',
      compiler: 'gcc 12',
      kcflags: ['-a'],
      targets: ['vmlinux'],
      makeVars: [],
    };
    const k = cacheKey(base);
    expect(k).toMatch(/^[0-9a-f]{16}$/);
    for (const change of [
      { sourceDir: '/other' },
      { compiler: 'gcc 13' },
      { kcflags: ['-b'] },
      { makeVars: ['ARCH=arm64'] },
      { recipe: 2 },
    ]) {
      expect(cacheKey({ ...base, ...change })).not.toBe(k);
    }
  });

  test('progress estimate of a later build scales the cached count by the options each config enables', async () => {
    await ensure();
    await writeFile(configFile, `${CONFIG}CONFIG_A=y\nCONFIG_B=m\n`); // 4 enabled instead of 2: a different key
    const progress: BuildProgress[] = [];
    await ensure({ onProgress: (p) => progress.push(p) });
    expect(progress[0]).toEqual({ compiled: 0, total: 26 });
  });

  test('a failed build is an error naming the log with the compiler error; nothing is committed and the dir is gone', async () => {
    env.FAKE_FAIL = '1';
    const e = (await ensure().then(
      () => undefined,
      (x: unknown) => x,
    )) as SetupError;
    expect(e).toBeInstanceOf(SetupError);
    expect(e.code).toBe('CACHE_BUILD_FAILED');
    const logFile = /full log: (\S+)/.exec(e.message)![1]!;
    expect(e.message).toContain('building the original kernel failed (exit 2)');
    expect(e.message).toContain("fs/proc/cmdline.c:7:1: error: expected ';' before '}' token");
    expect(await readFile(logFile, 'utf8')).toContain('  CC      obj12.o');
    const layout = cacheLayout(path.join(await realpath(tmp.path), 'cache'));
    expect(await readdir(layout.entries)).toEqual([]);
    expect(await readdir(layout.builds)).toEqual([]);
    expect(await readdir(layout.locks)).toEqual([]);

    env.FAKE_FAIL = 'disk';
    await expect(ensure()).rejects.toThrow(/the disk holding .* is full/);

    delete env.FAKE_FAIL;
    expect((await ensure()).hit).toBe(false);
  });

  test("leftovers of an interrupted build (no stamp) and a dead process's lock are ignored, broken and removed", async () => {
    const key = await keyNow();
    await ensure({ jobs: 1 }).then(() => undefined); // creates the layout
    const real = await realpath(cacheDir);
    const layout = cacheLayout(real);
    // Now fake a killed run for another config: half a build dir, its lock held by a pid that is gone.
    await writeFile(configFile, `${CONFIG}CONFIG_X=y\n`);
    const key2 = await keyNow();
    expect(key2).not.toBe(key);
    const half = path.join(layout.builds, `${key2}-0badc0de`);
    await mkdir(path.join(half, 'fs/proc'), { recursive: true });
    await writeFile(path.join(half, 'fs/proc/cmdline.o'), 'half');
    const dead = execa('true');
    await dead;
    await writeFile(path.join(layout.locks, `${key2}.lock`), JSON.stringify({ pid: dead.pid, host: os.hostname(), since: 'then' }));
    // …and a pointer someone wrote to it must not be trusted either (no stamp).
    await writeFile(path.join(layout.entries, `${key2}.json`), JSON.stringify({ format: 1, key: key2, buildDir: half, adopted: false }));
    // The killed run's make is still going in there (kill -9 does not reach it): it carries that run's tag.
    const orphanMake = execa('sh', ['-c', 'while :; do : > "fs/proc/.o.$(date +%N)"; sleep 0.01; done'], {
      cwd: half,
      reject: false,
      env: { [RUN_TAG_VAR]: `${dead.pid}-1` },
    });
    await new Promise((r) => setTimeout(r, 100));

    const waits: LockHolder[] = [];
    const r = await ensure({ onWait: (h) => waits.push(h) });
    expect((await orphanMake).signal).toBe('SIGKILL'); // stopped before its dir was removed
    expect(waits).toEqual([]);
    expect(r.hit).toBe(false);
    expect(r.key).toBe(key2);
    expect(r.buildDir).not.toBe(half);
    await expect(stat(half)).rejects.toThrow(/ENOENT/);
    const left = await readdir(layout.builds);
    expect(left).toHaveLength(2);
    expect(left).toEqual(expect.arrayContaining([path.basename(r.buildDir), expect.stringMatching(new RegExp(`^${key}-`))]));
  });

  test('a build that completed but was killed before its commit (stamp, no pointer) becomes the entry without building', async () => {
    const first = await ensure();
    const layout = cacheLayout(path.dirname(path.dirname(first.buildDir)));
    await unlink(path.join(layout.entries, `${first.key}.json`));
    const before = (await makeCalls()).length;
    const again = await ensure();
    expect(again).toMatchObject({ hit: true, buildDir: first.buildDir });
    expect(await makeCalls()).toHaveLength(before);
  });

  test('two concurrent calls build once: the second waits for the lock and then hits', async () => {
    const waits: LockHolder[] = [];
    const [a, b] = await Promise.all([ensure(), ensure({ onWait: (h) => waits.push(h) })]);
    expect([a.hit, b.hit].sort()).toEqual([false, true]);
    expect(a.buildDir).toBe(b.buildDir);
    expect((await makeCalls()).filter((c) => c.includes('vmlinux'))).toHaveLength(1);
    expect(waits.length).toBeLessThanOrEqual(1);
    if (waits.length) expect(waits[0]!.pid).toBe(process.pid);
  });

  test('adopting an existing build: it is checked, then hits without make, and is never removed', async () => {
    const build = path.join(tmp.path, 'prebuilt');
    await mkdir(path.join(build, 'init'), { recursive: true });
    await symlink(sourceDir, path.join(build, 'source'));
    await writeFile(path.join(build, 'Makefile'), 'include x\n');
    await writeFile(path.join(build, '.config'), `# written by kconfig\n${CONFIG}`);
    await writeFile(path.join(build, 'vmlinux.o'), '');
    await writeFile(path.join(build, 'Module.symvers'), '');
    await writeFile(
      path.join(build, 'init/.main.o.cmd'),
      'cmd_init/main.o := gcc -Wp,-MMD,init/.main.o.d -O2 -ffunction-sections -fdata-sections -c -o init/main.o init/main.c\n',
    );
    await writeFile(path.join(build, 'init/.version.o.cmd'), '');

    const adopted = await adoptBuild({ sourceDir, config: configFile, cacheDir, runner, buildDir: build });
    expect(adopted.key).toBe(await keyNow());
    const r = await ensure();
    expect(r).toEqual({ key: adopted.key, buildDir: await realpath(build), hit: true, adopted: true, configChanges: [] });
    expect(await makeCalls()).toEqual([]);

    // What does not match is refused, with the reason.
    await writeFile(path.join(build, '.config'), `${CONFIG}CONFIG_Y=y\n`);
    await expect(adoptBuild({ sourceDir, config: configFile, cacheDir, runner, buildDir: build })).rejects.toThrow(
      /its \.config differs in 1 options \(CONFIG_Y: n → y\)/,
    );
    await writeFile(path.join(build, '.config'), CONFIG);
    await writeFile(path.join(build, 'init/.main.o.cmd'), 'cmd_init/main.o := gcc -O2 -c -o init/main.o init/main.c\n');
    await expect(adoptBuild({ sourceDir, config: configFile, cacheDir, runner, buildDir: build })).rejects.toThrow(
      /init\/main\.o was not compiled with -ffunction-sections -fdata-sections/,
    );
    const other = path.join(tmp.path, 'other-linux');
    await mkdir(other);
    await writeFile(path.join(other, 'Makefile'), 'VERSION = 6\n');
    await expect(adoptBuild({ sourceDir: other, config: configFile, cacheDir, runner, buildDir: build })).rejects.toMatchObject({
      code: 'CACHE_NOT_A_BUILD',
      message: expect.stringContaining(`it was built from ${await realpath(sourceDir)}`),
    });
    // The adopted dir is still there after all this: the cache only removes dirs under builds/.
    expect((await stat(path.join(build, 'vmlinux.o'))).isFile()).toBe(true);
  });

  test('bad inputs are refused before anything is built', async () => {
    await writeFile(path.join(tmp.path, 'bad.config'), 'diff --git a/x b/x\n');
    await expect(ensure({ config: path.join(tmp.path, 'bad.config') })).rejects.toMatchObject({ code: 'CONFIG_NOT_A_CONFIG' });
    await expect(ensure({ sourceDir: path.join(tmp.path, 'nope') })).rejects.toMatchObject({ code: 'SOURCE_NOT_USABLE' });
    await expect(ensure({ cacheDir: path.join(sourceDir, '.cache/klp') })).rejects.toMatchObject({ code: 'CACHE_UNUSABLE' });
    await expect(stat(path.join(sourceDir, '.cache'))).rejects.toThrow(/ENOENT/); // refused before anything was created in the tree
    await writeFile(path.join(sourceDir, '.config'), CONFIG);
    await expect(ensure()).rejects.toMatchObject({
      code: 'SOURCE_NOT_USABLE',
      message: expect.stringContaining('configured or built in place'),
    });
    expect(await makeCalls()).toEqual([]);
  });

  test('olddefconfig changes to the given config are reported', async () => {
    env.FAKE_OLDDEFCONFIG_ADD = 'CONFIG_NEW_DEFAULT=y';
    const r = await ensure();
    expect(r.configChanges).toEqual([{ option: 'CONFIG_NEW_DEFAULT', before: 'n', after: 'y' }]);
  });
});

describe('cache lock', () => {
  let tmp: DirectoryResult;
  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  test('exclusive while held; released by its holder', async () => {
    const file = path.join(tmp.path, 'k.lock');
    const a = await tryAcquireLock(file);
    expect(a?.holder.pid).toBe(process.pid);
    expect(await tryAcquireLock(file)).toBeUndefined(); // we are alive
    await a!.release();
    const b = await tryAcquireLock(file);
    expect(b).toBeDefined();
    await b!.release();
    expect(await readdir(tmp.path)).toEqual([]);
  });

  test("a dead holder's lock, and a reused pid (other start time), are broken", async () => {
    const file = path.join(tmp.path, 'k.lock');
    const dead = execa('true');
    await dead;
    await writeFile(file, JSON.stringify({ pid: dead.pid, host: os.hostname(), since: 'x' }));
    const a = await tryAcquireLock(file);
    expect(a?.holder.pid).toBe(process.pid);
    await a!.release();
    await writeFile(file, JSON.stringify({ pid: process.pid, host: os.hostname(), startTime: '1', since: 'x' }));
    expect(await processStartTime(process.pid)).not.toBe('1');
    const b = await tryAcquireLock(file);
    expect(b).toBeDefined();
    await b!.release();
  });

  test('a live holder is waited for (told once), and the lock is taken when it dies; a timeout is an error', async () => {
    const file = path.join(tmp.path, 'k.lock');
    const child = execa('sleep', ['1.5']);
    const startTime = await processStartTime(child.pid!);
    await writeFile(file, JSON.stringify({ pid: child.pid, host: os.hostname(), startTime, since: 'x' }));
    await expect(acquireLock(file, { timeoutMs: 300, pollMs: 100 })).rejects.toMatchObject({
      code: 'CACHE_LOCK_TIMEOUT',
      message: expect.stringContaining(`held by pid ${child.pid}`),
    });
    const waits: LockHolder[] = [];
    const t0 = Date.now();
    const lock = await acquireLock(file, { onWait: (h) => waits.push(h), pollMs: 100 });
    expect(Date.now() - t0).toBeGreaterThan(500);
    expect(waits.map((h) => h.pid)).toEqual([child.pid]);
    await lock.release();
    await child;
  });

  test('a holder on another host is never broken', async () => {
    const file = path.join(tmp.path, 'k.lock');
    await writeFile(file, JSON.stringify({ pid: 1, host: `not-${os.hostname()}`, since: 'x' }));
    expect(await tryAcquireLock(file)).toBeUndefined();
  });
});

describe('source tree digest', () => {
  let tmp: DirectoryResult;
  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  test('stable; changes with any size, mtime, mode, name or link change; ignores .git; misses a same-size same-mtime rewrite (the documented trade-off)', async () => {
    const root = tmp.path;
    await mkdir(path.join(root, 'kernel'), { recursive: true });
    await mkdir(path.join(root, '.git/objects'), { recursive: true });
    await writeFile(path.join(root, 'kernel/a.c'), 'int a;\n');
    await writeFile(path.join(root, 'name with\nnewline'), 'x');
    await symlink('kernel/a.c', path.join(root, 'link'));
    const d0 = await digestTree(root);
    expect(d0.entries).toBe(4);
    expect((await digestTree(root)).digest).toBe(d0.digest);

    await writeFile(path.join(root, '.git/objects/pack'), 'history');
    expect((await digestTree(root)).digest).toBe(d0.digest);

    const file = path.join(root, 'kernel/a.c');
    const when = new Date('2024-01-02T03:04:05.678Z');
    await utimes(file, when, when);
    const before = (await digestTree(root)).digest;
    await writeFile(file, 'int b;\n'); // other contents, same size…
    await utimes(file, when, when); // …and the same mtime: not seen (the documented trade-off)
    expect((await digestTree(root)).digest).toBe(before);
    await utimes(file, new Date(when.getTime() + 1), new Date(when.getTime() + 1));
    const touched = (await digestTree(root)).digest;
    expect(touched).not.toBe(before);
    await writeFile(file, 'int bb;\n');
    await utimes(file, new Date(when.getTime() + 1), new Date(when.getTime() + 1));
    expect((await digestTree(root)).digest).not.toBe(touched); // size
    await writeFile(file, 'int b;\n');
    await utimes(file, new Date(when.getTime() + 1), new Date(when.getTime() + 1));

    await chmod(file, 0o755);
    const chmodded = (await digestTree(root)).digest;
    expect(chmodded).not.toBe(touched);
    await execa('ln', ['-sfn', 'kernel', path.join(root, 'link')]);
    expect((await digestTree(root)).digest).not.toBe(chmodded);
  });
});
