import { jest } from '@jest/globals';
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import os from 'node:os';
import path from 'node:path';
import { dir } from 'tmp-promise';
import { readElfFile, STT } from '../../src/elf/index.js';
import { firstMismatch, runningSymbols, type RunningSymbols } from '../../src/orchestrator/checks/running-match.js';
import { buildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { objectMembership } from '../../src/orchestrator/kbuild/membership.js';
import { objectOwners } from '../../src/orchestrator/kbuild/object-owner.js';
import { HostRunner } from '../../src/orchestrator/runners/runner.js';
import { buildPatchedObjects } from '../../src/orchestrator/views/patched-objects.js';
import { explainRun, fixtureCache, klpforge } from '../helpers/integration.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

/**
 * The lazy original's parts on the fixture kernel: kbuild's own answer to
 * "does this config build that object?", the running-kernel check on every
 * object of a real build (files no fixture chose), and a whole lazy build.
 */
jest.setTimeout(600_000);
const kernel = fixtureKernel();
const runner = new HostRunner();

describe('objectMembership asks the directory Makefiles evaluated against the config', () => {
  test('built-in, modular, switched-off and unreachable objects are told apart, with the Makefile that decides', async () => {
    const m = await objectMembership(
      ['fs/proc/cmdline.o', 'fs/binfmt_misc.o', 'kernel/sched/build_policy.o', 'kernel/sched/rt.o', 'fs/ntfs/super.o', 'fs/proc/kcore.o'],
      { buildDir: kernel.fsections, sourceDir: kernel.source, runner },
    );
    expect(m).toEqual([
      { object: 'fs/proc/cmdline.o', built: 'vmlinux' },
      { object: 'fs/binfmt_misc.o', built: 'module' },
      { object: 'kernel/sched/build_policy.o', built: 'vmlinux' },
      // rt.c is #included by build_policy.c, never compiled on its own.
      { object: 'kernel/sched/rt.o', built: false, why: 'kernel/sched/Makefile does not build rt.o with this config' },
      { object: 'fs/ntfs/super.o', built: false, why: 'fs/Makefile does not descend into fs/ntfs/ with this config' },
      { object: 'fs/proc/kcore.o', built: false, why: 'fs/proc/Makefile does not build kcore.o with this config' },
    ]);
  });

  test('it agrees with the full build: every object the fsections build compiled under fs/ and kernel/ is a member, as built-in or module as kbuild linked it', async () => {
    const index = await buildIndex(kernel.fsections);
    const owner = await objectOwners(kernel.fsections);
    const objects = [...index.objects.keys()].filter((o) => /^(fs|kernel)\//.test(o) && o.endsWith('.o') && !o.endsWith('.mod.o'));
    expect(objects.length).toBeGreaterThan(150);
    const m = await objectMembership(objects, { buildDir: kernel.fsections, sourceDir: kernel.source, runner, jobs: 2 });
    const wrong = m.filter((x) => x.built !== (owner(x.object).kind === 'module' ? 'module' : 'vmlinux'));
    expect(wrong).toEqual([]);
  });
});

describe('firstMismatch: original objects against the running kernel', () => {
  let vmlinux: RunningSymbols;
  beforeAll(async () => {
    vmlinux = runningSymbols(await readElfFile(kernel.vmlinux), 'vmlinux');
  });

  test('every C object of the function-sections build matches the plain build it was not linked into (vmlinux and modules)', async () => {
    const index = await buildIndex(kernel.fsections);
    const owner = await objectOwners(kernel.fsections);
    const modules = new Map<string, RunningSymbols>();
    const mismatches: string[] = [];
    let checked = 0;
    for (const [object, record] of index.objects) {
      if (!record.livepatch.livepatchable || !record.source.endsWith('.c')) continue;
      const o = owner(object);
      let running = vmlinux;
      if (o.kind === 'module') {
        if (!modules.has(o.ko)) modules.set(o.ko, runningSymbols(await readElfFile(path.join(kernel.plain, o.ko)), o.ko));
        running = modules.get(o.ko)!;
      }
      const p = firstMismatch(await readElfFile(path.join(kernel.fsections, object)), object, running);
      if (p) mismatches.push(p.message);
      checked++;
    }
    expect(checked).toBeGreaterThan(900);
    expect(mismatches).toEqual([]);
  });

  test('a jump the assembler shortened in the plain build is allowed for: timer_list_next is 3 bytes longer with one section per function, and still matches', async () => {
    const obj = await readElfFile(path.join(kernel.fsections, 'kernel/time/timer_list.o'));
    const here = obj.symbols.find((s) => s.name === 'timer_list_next' && s.type === STT.FUNC)!.size;
    const there = vmlinux.files.get('timer_list.c')!.flatMap((b) => b.get('timer_list_next') ?? []);
    expect(there.map((n) => here - n)).toEqual([3n]);
    expect(firstMismatch(obj, 'kernel/time/timer_list.o', vmlinux)).toBeUndefined();
  });

  test('an object compiled from other source is refused, naming the function whose size differs', async () => {
    const w = await dir({ prefix: 'klpforge-match-', unsafeCleanup: true });
    try {
      const r = await buildPatchedObjects({
        sourceDir: kernel.source,
        buildDir: kernel.fsections,
        patches: [path.join(REPO_ROOT, 'kernel-fixtures/integration/01-cmdline-extra-word/fix.patch')],
        workDir: w.path,
        jobs: 2,
      });
      const p = firstMismatch(await readElfFile(r.pairs[0]!.patched), 'fs/proc/cmdline.o', vmlinux);
      expect(p?.symbol).toBe('cmdline_proc_show');
      expect(p?.message).toMatch(
        /^fs\/proc\/cmdline\.o: cmdline_proc_show is \d+ bytes compiled here but \d+ bytes in the running kernel \(vmlinux\): the source, config or compiler is not the running kernel's/,
      );
    } finally {
      await w.cleanup();
    }
  });
});

describe('klpforge build --original lazy on the fixture kernel', () => {
  test("a header, a .c file compiled only inside another, and one a Makefile builds from another directory (kvm.ko's virt/kvm), reach exactly the objects the full build's dependency records name", async () => {
    const cache = await dir({ prefix: 'klpforge-lazy-hdr-', unsafeCleanup: true });
    const out = await dir({ prefix: 'klpforge-lazy-hdr-out-', unsafeCleanup: true });
    try {
      const full = await buildIndex(kernel.fsections);
      for (const file of ['include/linux/tsacct_kern.h', 'kernel/sched/rt.c', 'virt/kvm/kvm_main.c']) {
        // A comment: every object that includes the file is compiled on both sides and none changes.
        const first = (await readFile(path.join(kernel.source, file), 'utf8')).split('\n')[0];
        const patch = path.join(out.path, 'comment.patch');
        await writeFile(patch, [`--- a/${file}`, `+++ b/${file}`, '@@ -1,1 +1,2 @@', '+/* klpforge */', ` ${first}`, ''].join('\n'));
        const r = await klpforge([
          'build',
          patch,
          '-s',
          kernel.source,
          '-c',
          path.join(kernel.fsections, '.config'),
          '-v',
          kernel.vmlinux,
          '--original',
          'lazy',
          '--cache-dir',
          cache.path,
          '-o',
          out.path,
          '-n',
          'hdr',
          '-j',
          '2',
        ]);
        expect(r.exitCode).toBe(3);
        const named = /no function changed in (.*): nothing to livepatch/.exec(r.stderr)?.[1]?.split(', ').sort();
        const expected = [...(full.byDependency.get(file) ?? []), ...(full.bySource.get(file) ?? [])]
          .filter((o) => full.objects.get(o)!.livepatch.livepatchable)
          .sort();
        expect(expected.length).toBeGreaterThan(0);
        expect(named).toEqual(expected);
      }
      // kvm_main.o was compiled as arch/x86/kvm/../../../virt/kvm/kvm_main.o: with kvm.ko's flags.
      const tree = path.join(cache.path, 'prepared', (await readdir(path.join(cache.path, 'prepared')))[0]!);
      expect((await buildIndex(tree)).objects.get('virt/kvm/kvm_main.o')?.command).toMatch(/-DMODULE .*-DKBUILD_MODNAME='"kvm"'/);
    } finally {
      await cache.cleanup();
      await out.cleanup();
    }
  });

  test("without --original, klpforge picks the lazy original only with the running kernel's build dir at hand, and falls back to the full one for a header that reaches too many objects, saying so", async () => {
    const cacheDir = await fixtureCache(kernel); // the full original: the fixture's function-sections build, adopted
    const out = await dir({ prefix: 'klpforge-auto-', unsafeCleanup: true });
    try {
      const run = (args: string[], env: Record<string, string> = {}) =>
        execa(
          process.execPath,
          [
            path.join(REPO_ROOT, 'bin/klpforge.js'),
            'build',
            ...args,
            '-s',
            kernel.source,
            '-c',
            path.join(kernel.fsections, '.config'),
            '--cache-dir',
            cacheDir,
            '-o',
            out.path,
            '-j',
            '2',
            '--json',
          ],
          { reject: false, env: { ...process.env, ...env } },
        );
      const cmdline = path.join(REPO_ROOT, 'kernel-fixtures/integration/01-cmdline-extra-word/fix.patch');
      // A vmlinux alone (no Module.symvers beside it): the full original.
      await copyFile(kernel.vmlinux, path.join(out.path, 'vmlinux'));
      const alone = await run([cmdline, '-v', path.join(out.path, 'vmlinux')]);
      expect({ exit: alone.exitCode, mode: (JSON.parse(alone.stdout) as { original: { mode: string } }).original.mode }).toEqual({
        exit: 0,
        mode: 'full',
      });
      // The build dir's vmlinux: lazy.
      const lazy = await run([cmdline, '-v', kernel.vmlinux]);
      expect({ exit: lazy.exitCode, mode: (JSON.parse(lazy.stdout) as { original: { mode: string } }).original.mode }).toEqual({
        exit: 0,
        mode: 'lazy',
      });
      // A header past the limit: the full original, with the reason and the cost on stderr.
      const file = 'include/linux/tsacct_kern.h';
      const first = (await readFile(path.join(kernel.source, file), 'utf8')).split('\n')[0];
      const patch = path.join(out.path, 'header.patch');
      await writeFile(patch, [`--- a/${file}`, `+++ b/${file}`, '@@ -1,1 +1,2 @@', '+/* klpforge */', ` ${first}`, ''].join('\n'));
      const header = await run([patch, '-v', kernel.vmlinux], { KLPFORGE_LAZY_MAX_OBJECTS: '2' });
      expect(header.exitCode).toBe(3);
      expect(header.stderr).toMatch(
        /klpforge: note: include\/linux\/tsacct_kern\.h is included by 4 objects of this configuration: compiling each before and after the patch takes about \d+ min on 2 core\(s\), and the lazy original stops at 2; the full original \(all \d+ objects, about \d+ min of compiles, cached for later patches\): building the full original instead/,
      );
      expect((JSON.parse(header.stdout) as { error: { message: string } }).error.message).toMatch(
        /no function changed in fs\/exec\.o, kernel\/exit\.o, kernel\/fork\.o, kernel\/sched\/build_policy\.o/,
      );
      // With --original lazy asked for, the same is an error, not a fallback.
      const asked = await run([patch, '-v', kernel.vmlinux, '--original', 'lazy'], { KLPFORGE_LAZY_MAX_OBJECTS: '2' });
      expect({ exit: asked.exitCode, code: (JSON.parse(asked.stdout) as { error: { code: string } }).error.code }).toEqual({
        exit: 1,
        code: 'LAZY_TOO_MANY_OBJECTS',
      });
    } finally {
      await out.cleanup();
    }
  });

  test('a vmlinux patch and a module patch build against a prepared tree with only their objects compiled', async () => {
    const cache = await dir({ prefix: 'klpforge-lazy-', unsafeCleanup: true });
    const out = await dir({ prefix: 'klpforge-lazy-out-', unsafeCleanup: true });
    try {
      for (const [c, fn] of [
        ['01-cmdline-extra-word', 'vmlinux:cmdline_proc_show'],
        ['07-module-loaded-before', 'binfmt_misc:bm_status_read'],
      ] as const) {
        const r = await klpforge([
          'build',
          path.join(REPO_ROOT, 'kernel-fixtures/integration', c, 'fix.patch'),
          '-s',
          kernel.source,
          '-c',
          path.join(kernel.fsections, '.config'),
          '-v',
          kernel.vmlinux,
          '--original',
          'lazy',
          '--cache-dir',
          cache.path,
          '-o',
          out.path,
          '-n',
          c.slice(0, 2),
          '-j',
          String(Math.min(2, os.cpus().length)),
        ]);
        if (r.exitCode !== 0) throw new Error(explainRun('klpforge build --original lazy', r));
        expect(r.stdout).toContain(`patched ${fn} `);
        expect(r.stderr).toMatch(/ok +original objects [\d.]+s: 1 compiled/);
      }
      // Two patches, one prepared tree: what the first compiled is still there for the next.
      const prepared = path.join(cache.path, 'prepared');
      const trees = await import('node:fs/promises').then((fs) => fs.readdir(prepared));
      expect(trees).toHaveLength(1);
      const index = await buildIndex(path.join(prepared, trees[0]!));
      expect([...index.objects.keys()].filter((o) => o === 'fs/proc/cmdline.o' || o === 'fs/binfmt_misc.o').sort()).toEqual([
        'fs/binfmt_misc.o',
        'fs/proc/cmdline.o',
      ]);
      expect(await readFile(path.join(prepared, trees[0]!, 'Module.symvers'), 'utf8')).toBe(
        await readFile(path.join(kernel.plain, 'Module.symvers'), 'utf8'),
      );
    } finally {
      await cache.cleanup();
      await out.cleanup();
    }
  });
});
