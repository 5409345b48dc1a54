import { jest } from '@jest/globals';
import { copyFile, mkdir, readFile, readdir, realpath, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import { cacheLayout } from '../../src/orchestrator/original/cache-entries.js';
import { computeCacheKey } from '../../src/orchestrator/original/cache-key.js';
import { checkCompiler } from '../../src/orchestrator/checks/compiler-check.js';
import { checkKernelConfig } from '../../src/orchestrator/checks/config-check.js';
import { readKernelConfig } from '../../src/orchestrator/kbuild/kconfig.js';
import { buildKernelRelease, checkKernelRelease, expectedKernelRelease } from '../../src/orchestrator/checks/kernel-release.js';
import { adoptBuild, ensureOriginalBuild } from '../../src/orchestrator/original/original-cache.js';
import { buildPatchedObjects } from '../../src/orchestrator/views/patched-objects.js';
import { HostRunner, type Runner } from '../../src/orchestrator/runners/runner.js';
import { readVmlinuxInfo } from '../../src/orchestrator/checks/vmlinux-info.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

/**
 * Preflight checks and the original-build cache on the Linux 6.1 fixture.
 * No kernel is built: the fixture's fsections build is adopted as the cached
 * original, as CI does. The fixture dirs are shared and never written.
 */
jest.setTimeout(180_000);

describe('preflight checks on the fixture kernel', () => {
  const kernel = fixtureKernel();
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  test('its .config passes the livepatch rules', async () => {
    expect(checkKernelConfig(await readKernelConfig(path.join(kernel.plain, '.config')))).toEqual([]);
  });

  test('its vmlinux: release matches the source tree and the build, compiler matches the host gcc', async () => {
    const info = await readVmlinuxInfo(kernel.vmlinux);
    expect(info.release).toBe(kernel.sourceVersion.replace(/-.*$/, '')); // 6.1.192-2 (Debian) → 6.1.192
    expect(info.gcc).toEqual([`GCC: ${kernel.compiler.replace(/^gcc /, '')}`]);
    const config = await readKernelConfig(path.join(kernel.plain, '.config'));
    expect(checkKernelRelease(info, await expectedKernelRelease(kernel.source, config, {}))).toBeUndefined();
    expect(checkKernelRelease(info, (await buildKernelRelease(kernel.plain))!)).toBeUndefined();
    expect(await checkCompiler({ runner: new HostRunner(), workDir: tmp.path, target: info })).toEqual({
      status: 'match',
      target: info.gcc[0],
      patch: info.gcc[0],
    });
  });

  test('a vmlinux whose .comment names another gcc is refused with both versions', async () => {
    const fake = path.join(tmp.path, 'vmlinux');
    await copyFile(kernel.vmlinux, fake);
    await writeFile(path.join(tmp.path, 'comment'), 'GCC: (Debian 10.2.1-6) 10.2.1 20210110\0');
    await execa('objcopy', [`--update-section=.comment=${path.join(tmp.path, 'comment')}`, fake]);
    const info = await readVmlinuxInfo(fake);
    const r = await checkCompiler({ runner: new HostRunner(), workDir: tmp.path, target: info });
    expect(r.status).toBe('mismatch');
    if (r.status !== 'mismatch') return;
    expect(r.problem.message).toContain(`${fake} was built by "GCC: (Debian 10.2.1-6) 10.2.1 20210110"`);
    expect(r.problem.message).toContain(`the patch would be built by "GCC: ${kernel.compiler.replace(/^gcc /, '')}"`);
    expect(await checkCompiler({ runner: new HostRunner(), workDir: tmp.path, target: info, skip: true })).toEqual({ status: 'skipped' });
  });
});

describe('original-build cache on the fixture kernel', () => {
  const kernel = fixtureKernel();
  let tmp: DirectoryResult;
  let cacheDir: string;
  const calls: string[] = [];
  const host = new HostRunner();
  const runner: Runner = {
    run: (argv, o) => {
      calls.push(argv.join(' '));
      return host.run(argv, o);
    },
  };
  const inputs = () => ({ sourceDir: kernel.source, config: path.join(kernel.fsections, '.config'), cacheDir, runner });

  beforeAll(async () => {
    tmp = await dir({ unsafeCleanup: true });
    cacheDir = path.join(tmp.path, 'cache');
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  test('the key is stable and takes seconds, not a build', async () => {
    const config = await readKernelConfig(path.join(kernel.fsections, '.config'));
    const t0 = Date.now();
    const a = await computeCacheKey({ sourceDir: kernel.source, config, runner, cwd: tmp.path });
    const took = Date.now() - t0;
    const b = await computeCacheKey({ sourceDir: kernel.source, config, runner, cwd: tmp.path });
    expect(b.key).toBe(a.key);
    expect(a.inputs).toMatchObject({
      sourceDir: await realpath(kernel.source),
      compiler: kernel.compiler,
      kcflags: ['-ffunction-sections', '-fdata-sections'],
    });
    expect(took).toBeLessThan(15_000);
  });

  test('the fsections build is adopted; ensureOriginalBuild then hits without running make, and leftovers are swept', async () => {
    const adopted = await adoptBuild({ ...inputs(), buildDir: kernel.fsections });
    expect(adopted.buildDir).toBe(await realpath(kernel.fsections));

    // A leftover of an interrupted build of the same key: no stamp, nothing points to it.
    const layout = cacheLayout(await realpath(cacheDir));
    const leftover = path.join(layout.builds, `${adopted.key}-0badc0de`);
    await mkdir(path.join(leftover, 'fs/proc'), { recursive: true });
    await writeFile(path.join(leftover, 'fs/proc/cmdline.o'), 'half an object');

    calls.length = 0;
    const r = await ensureOriginalBuild({ ...inputs(), jobs: 2 });
    expect(r).toEqual({ key: adopted.key, buildDir: await realpath(kernel.fsections), hit: true, adopted: true, configChanges: [] });
    expect(calls.filter((c) => c.includes('make'))).toEqual([]);
    expect(await readdir(layout.builds)).toEqual([]);
    expect((await stat(path.join(kernel.fsections, 'vmlinux.o'))).isFile()).toBe(true);
  });

  test('the plain build (no -ffunction-sections) cannot be adopted as the original', async () => {
    await expect(adoptBuild({ ...inputs(), config: path.join(kernel.plain, '.config'), buildDir: kernel.plain })).rejects.toMatchObject({
      code: 'CACHE_NOT_A_BUILD',
      message: expect.stringContaining('not compiled with -ffunction-sections -fdata-sections'),
    });
  });

  test('the cached entry is what recompiling needs: a one-line patch recompiles fs/proc/cmdline.o from it', async () => {
    const r = await ensureOriginalBuild(inputs());
    const work = path.join(tmp.path, 'work');
    const result = await buildPatchedObjects({
      sourceDir: kernel.source,
      buildDir: r.buildDir,
      patches: [path.join(REPO_ROOT, 'kernel-fixtures/orchestrator/cmdline-one-line.patch')],
      workDir: work,
      jobs: 2,
    });
    expect(result.pairs.map((p) => p.object)).toEqual(['fs/proc/cmdline.o']);
  });
});

/**
 * Why cache entries are never renamed into place: kbuild records the absolute
 * O= path in objtool's .cmd files, so `make O=NEW` on a moved build dir
 * rebuilds objtool, and with it (every object depends on objtool) the kernel.
 * Shown on a copy of the fsections build at another path; make is stopped as
 * soon as it starts recompiling.
 */
describe('a kbuild O= dir does not survive a move', () => {
  const kernel = fixtureKernel();
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  test("objtool's recorded commands name the absolute build dir; kernel objects' do not", async () => {
    const objtoolCmd = await readFile(path.join(kernel.fsections, 'tools/objtool/.check.o.cmd'), 'utf8');
    expect(objtoolCmd).toContain(`${kernel.fsections}/tools/objtool/check.o`);
    const kernelCmd = await readFile(path.join(kernel.fsections, 'fs/proc/.cmdline.o.cmd'), 'utf8');
    expect(kernelCmd).not.toContain(kernel.fsections);
  });

  test('make O=MOVED recompiles objtool and then kernel objects', async () => {
    const moved = path.join(tmp.path, 'moved');
    await execa('cp', ['-a', kernel.fsections, moved]);
    const make = execa('make', ['-C', kernel.source, `O=${moved}`, '-j2', 'KCFLAGS=-ffunction-sections -fdata-sections', 'vmlinux'], {
      detached: true,
      buffer: false,
      reject: false,
      all: true,
      stdin: 'ignore',
    });
    const seen: string[] = [];
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      try {
        process.kill(-make.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const guard = setTimeout(stop, 150_000);
    for await (const line of createInterface({ input: make.all })) {
      if (/^ {2}CC /.test(line)) seen.push(line);
      if (/^ {2}CC +(init|kernel|fs|mm|arch)\//.test(line)) {
        stop();
        break;
      }
    }
    stop();
    clearTimeout(guard);
    await make;
    expect(seen.some((l) => l.includes(`${moved}/tools/objtool/`))).toBe(true);
    expect(seen.some((l) => /^ {2}CC +(init|kernel|fs|mm|arch)\//.test(l))).toBe(true);
  });
});
