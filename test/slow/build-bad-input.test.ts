import { jest } from '@jest/globals';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import {
  type BuildArgs,
  buildArgv,
  type BuildRun,
  cacheState,
  FIXTURE_PATCH,
  outcomeLines,
  privateCache,
  runBuild,
  touchedBy,
  treeState,
  vmlinuxWithRelease,
  workDirs,
} from '../helpers/build-runs.js';
import type { ScenarioResult } from '../helpers/full-disk-scenario.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

/**
 * Bad input to `klpforge build` on the Linux 6.1 fixture (issue 5): each ends
 * with one clear message (what, where, what to do; refusals list their
 * reasons) and its exit code, and afterwards the source tree is unchanged
 * (metadata digest of every entry, contents of the files the patch touches),
 * the cache is unchanged (every file of it, and the cached original build
 * dir), no work dir is left, and no module was written.
 *
 * The cache is private to this file (the fixture's fsections build adopted
 * into it), so nothing here builds a kernel and work dirs can be counted.
 */
jest.setTimeout(300_000);

const kernel = fixtureKernel();
const BUILD_ERRORS = path.join(REPO_ROOT, 'kernel-fixtures/build-errors');
const ORCH = path.join(REPO_ROOT, 'kernel-fixtures/orchestrator');
const config = path.join(kernel.fsections, '.config');

let cache: { dir: string; remove: () => Promise<void> };
let tmp: DirectoryResult;
let cacheBefore: Awaited<ReturnType<typeof cacheState>>;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  cache = await privateCache(kernel, 'bad-input');
  // One good build first: it probes the struct sizes into the cache, so every later run finds the cache complete.
  const warm = await runBuild(kernel, cache.dir, path.join(tmp.path, 'warm'));
  if (warm.exitCode !== 0) throw new Error(`warm-up build failed (${warm.exitCode}):\n${warm.stderr}`);
  cacheBefore = await cacheState(cache.dir, kernel.fsections);
}, 600_000);

afterAll(async () => {
  await cache?.remove();
  await tmp?.cleanup();
});

function show(r: BuildRun): string {
  return `exit ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}\n--- stderr\n${r.stderr}\n--- stdout\n${r.stdout}`;
}

/** No stack trace, no "internal error", and the outcome starts with one "klpforge: …" line. */
function expectCleanMessage(r: BuildRun): string[] {
  const lines = outcomeLines(r.stderr);
  expect(lines.length).toBeGreaterThan(0);
  expect(lines[0]).toMatch(/^klpforge: \S/);
  for (const l of lines) {
    expect(l).not.toMatch(/internal error|^\s+at \S+ \(|^\s+at (file|node):|Error: E[A-Z]+:|undefined|\[object /);
  }
  return lines;
}

interface Case {
  patches?: string[];
  args?: BuildArgs;
  exitCode: number;
  /** The first line of the outcome, whole. */
  headline: RegExp;
  /** Lines that must follow it (reasons, the compiler's message, the rejected hunk). */
  then?: RegExp[];
  /** JSON error code (checked in a second --json run when given). */
  jsonCode?: string;
}

/** Runs the build and proves the message, the exit code, and that nothing was lost or left behind. */
async function expectRefused(name: string, c: Case): Promise<string[]> {
  const patches = c.patches ?? [FIXTURE_PATCH];
  const touched = [...new Set((await Promise.all(patches.map(touchedBy))).flat())];
  const treeBefore = await treeState(kernel.source, touched);
  const out = path.join(tmp.path, name);
  const r = await runBuild(kernel, cache.dir, out, { ...c.args, patches });
  if (r.exitCode !== c.exitCode) throw new Error(`expected exit ${c.exitCode}, got ${show(r)}`);
  const lines = expectCleanMessage(r);
  expect(lines[0]).toMatch(c.headline);
  const rest = lines.slice(1).join('\n');
  for (const re of c.then ?? []) expect(rest).toMatch(re);
  expect(r.stdout).toBe('');

  if (c.jsonCode) {
    const j = await runBuild(kernel, cache.dir, out, { ...c.args, patches, extra: ['--json'] });
    expect(j.exitCode).toBe(c.exitCode);
    const report = JSON.parse(j.stdout) as { ok: boolean; error: { code: string; exitCode: number; message: string } };
    expect(report.ok).toBe(false);
    expect(report.error.code).toBe(c.jsonCode);
    expect(report.error.exitCode).toBe(c.exitCode);
  }

  expect(await treeState(kernel.source, touched)).toEqual(treeBefore);
  expect(await cacheState(cache.dir, kernel.fsections)).toEqual(cacheBefore);
  expect(await workDirs(cache.dir)).toEqual([]);
  expect(await readdir(out).catch(() => [])).toEqual([]);
  return lines;
}

describe('klpforge build: bad input ends with one clear message, the tree and the cache untouched', () => {
  test('a patch that does not apply: exit 1, names the patch, says to rebase it, shows the rejected hunk', async () => {
    const patch = path.join(ORCH, 'cmdline-stale.patch');
    await expectRefused('does-not-apply', {
      patches: [patch],
      exitCode: 1,
      jsonCode: 'ORCH_PATCH_DOES_NOT_APPLY',
      headline: new RegExp(`^klpforge: ${patch}: does not apply to the source tree: rebase the patch onto this kernel version$`),
      then: [/^fs\/proc\/cmdline\.c: hunk #1 FAILED at line 6:$/m, /^-\tseq_puts\(m, saved_command_line\);$/m, /^ \tseq_putc\(m, 0\);$/m],
    });
  });

  test('a patch touching only a lib/ file this .config does not build: exit 3, names the file, nothing to livepatch', async () => {
    await expectRefused('outside-lib', {
      patches: [path.join(BUILD_ERRORS, 'outside-lib.patch')],
      exitCode: 3,
      jsonCode: 'BUILD_NOTHING_BUILT',
      headline: /^klpforge: the patch only touches files no object of this kernel build uses \(lib\/bch\.c\): nothing to livepatch/,
    });
  });

  test('a patch touching only an assembly (.S) file: exit 2, NOT_LIVEPATCHABLE names the object and says to move the fix into C', async () => {
    await expectRefused('assembly', {
      patches: [path.join(BUILD_ERRORS, 'assembly.patch')],
      exitCode: 2,
      jsonCode: 'BUILD_REFUSED',
      headline: /^klpforge: the patch changes code a livepatch cannot replace:$/,
      then: [
        /^ {2}arch\/x86\/lib\/memcpy_64\.o: NOT_LIVEPATCHABLE: assembly has no ftrace entry to redirect: move the fix into C, or rebuild and reboot$/m,
      ],
    });
  });

  test('a patch touching only vDSO code: exit 2, NOT_LIVEPATCHABLE says a livepatch cannot reach user space', async () => {
    await expectRefused('vdso', {
      patches: [path.join(BUILD_ERRORS, 'vdso.patch')],
      exitCode: 2,
      jsonCode: 'BUILD_REFUSED',
      headline: /^klpforge: the patch changes code a livepatch cannot replace:$/,
      then: [/^ {2}arch\/x86\/entry\/vdso\/vgetcpu\.o: NOT_LIVEPATCHABLE: the vDSO runs in user space.*rebuild and reboot$/m],
    });
  });

  test('a patch touching only boot code (not in the vmlinux original build): exit 2, NOT_LIVEPATCHABLE says it needs a reboot', async () => {
    await expectRefused('boot', {
      patches: [path.join(BUILD_ERRORS, 'boot.patch')],
      exitCode: 2,
      jsonCode: 'BUILD_REFUSED',
      headline: /^klpforge: the patch changes code a livepatch cannot replace:$/,
      then: [
        /^ {2}arch\/x86\/boot\/main\.c: NOT_LIVEPATCHABLE: boot and decompressor code is gone once the kernel runs: the change needs a reboot$/m,
      ],
    });
  });

  test('a missing .config (given with -c, or the default SOURCEDIR/.config): exit 1, names the file and says to pass one with -c', async () => {
    const missing = path.join(tmp.path, 'no-such.config');
    await expectRefused('missing-config', {
      args: { config: missing },
      exitCode: 1,
      jsonCode: 'CONFIG_NOT_FOUND',
      headline: new RegExp(
        `^klpforge: ${missing}: cannot read the kernel config \\(ENOENT\\): pass an existing \\.config with -c/--config$`,
      ),
    });
    await expectRefused('default-config', {
      args: { config: null },
      exitCode: 1,
      headline: new RegExp(
        `^klpforge: ${kernel.source}/\\.config: cannot read the kernel config \\(ENOENT\\): pass an existing \\.config with -c/--config$`,
      ),
    });
  });

  test('a file that is not a .config (a patch passed as -c): exit 1, quotes the line that gave it away', async () => {
    await expectRefused('not-a-config', {
      args: { config: FIXTURE_PATCH },
      exitCode: 1,
      jsonCode: 'CONFIG_NOT_A_CONFIG',
      headline: new RegExp(
        `^klpforge: ${FIXTURE_PATCH}: not a kernel \\.config \\(line 1 is not CONFIG_NAME=value: ".*"\\): pass the \\.config of the kernel being patched`,
      ),
    });
  });

  test('a .config without CONFIG_LIVEPATCH (modified copy): exit 1, names the option and why it is needed', async () => {
    const text = await readFile(config, 'utf8');
    expect(text).toMatch(/^CONFIG_LIVEPATCH=y$/m);
    const noLivepatch = path.join(tmp.path, 'no-livepatch.config');
    await writeFile(noLivepatch, text.replace(/^CONFIG_LIVEPATCH=y$/m, '# CONFIG_LIVEPATCH is not set'));
    await expectRefused('no-livepatch', {
      args: { config: noLivepatch },
      exitCode: 1,
      jsonCode: 'BUILD_INPUT',
      headline: new RegExp(`^klpforge: ${noLivepatch}: CONFIG_LIVEPATCH is not set, and a livepatch needs it: .*CONFIG_LIVEPATCH=y`),
    });
  });

  test('a .config of another kernel release (CONFIG_LOCALVERSION differs from the vmlinux): exit 1, both releases named', async () => {
    const text = await readFile(config, 'utf8');
    const other = path.join(tmp.path, 'other-release.config');
    await writeFile(other, text.replace(/^CONFIG_LOCALVERSION=""$/m, 'CONFIG_LOCALVERSION="-other"'));
    await expectRefused('other-release-config', {
      args: { config: other },
      exitCode: 1,
      jsonCode: 'BUILD_INPUT',
      headline: new RegExp(
        `^klpforge: ${kernel.vmlinux} is Linux 6\\.1\\.192, but ${kernel.source} with ${other} builds 6\\.1\\.192-other: pass the vmlinux of the kernel this source and config built`,
      ),
    });
  });

  test('a vmlinux of another kernel (banner release changed in a copy): exit 1, both releases named, says which vmlinux to pass', async () => {
    const fake = await vmlinuxWithRelease(kernel.vmlinux, '6.1.193', path.join(tmp.path, 'vmlinux-6.1.193'));
    await expectRefused('other-vmlinux', {
      args: { vmlinux: fake },
      exitCode: 1,
      jsonCode: 'BUILD_INPUT',
      headline: new RegExp(
        `^klpforge: ${fake} is Linux 6\\.1\\.193, but ${kernel.source} with ${config} builds 6\\.1\\.192: pass the vmlinux of the kernel this source and config built`,
      ),
    });
  });

  test('a bzImage given as the vmlinux: exit 1, says to pass the uncompressed ELF vmlinux', async () => {
    await expectRefused('bzimage-as-vmlinux', {
      args: { vmlinux: kernel.bzImage },
      exitCode: 1,
      headline: new RegExp(`^klpforge: ${kernel.bzImage}: not an ELF file .*: pass the uncompressed ELF vmlinux`),
    });
  });

  test("a compiler error in the patched code: exit 1, names the object and shows gcc's error with its source line", async () => {
    await expectRefused('compile-error', {
      patches: [path.join(ORCH, 'cmdline-compile-error.patch')],
      exitCode: 1,
      jsonCode: 'ORCH_COMPILE_FAILED',
      headline: /^klpforge: fs\/proc\/cmdline\.o: recompiling with the patch failed \(exit 1\): fix the patch so it compiles$/,
      then: [
        /^fs\/proc\/cmdline\.c:9:21: error: .saved_command_line_that_does_not_exist. undeclared/m,
        /seq_puts\(m, saved_command_line_that_does_not_exist\);/,
      ],
    });
  });

  test('an unsupported change found by the differ (initialised data changed): exit 2, every reason with its code and the way out', async () => {
    await expectRefused('data-changed', {
      patches: [path.join(REPO_ROOT, 'kernel-fixtures/integration/14-data-initializer-FAIL/fix.patch')],
      exitCode: 2,
      jsonCode: 'BUILD_REFUSED',
      headline: /^klpforge: the patch changes things a livepatch cannot carry:$/,
      then: [/^ {2}mm\/util\.o: DATA_CHANGED: data sysctl_max_map_count in \.data\.\.read_mostly changed .*: .*shadow variable/m],
    });
  });

  test('a full output dir (a 64 KiB tmpfs, filled): exit 1, says the output dir is full and to pass another -o', async () => {
    const mountPoint = path.join(tmp.path, 'full-out');
    await mkdir(mountPoint);
    const out = path.join(mountPoint, 'out');
    const treeBefore = await treeState(kernel.source, ['fs/proc/cmdline.c']);
    // A private mount namespace: the tmpfs exists for this shell and klpforge only, and goes with them.
    const script =
      'mount -t tmpfs -o size=64k klpforge-full-out "$1" && { dd if=/dev/zero of="$1/fill" bs=4k 2>/dev/null; shift; exec "$@"; }';
    const argv = buildArgv(kernel, cache.dir, out, { extra: ['-n', 'fullout'] });
    const t0 = performance.now();
    const r0 = await execa(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', mountPoint, process.execPath, ...argv],
      { reject: false, stdin: 'ignore' },
    );
    const r: BuildRun = {
      exitCode: r0.exitCode,
      signal: r0.signal,
      stdout: String(r0.stdout),
      stderr: String(r0.stderr),
      ms: performance.now() - t0,
    };
    if (r.exitCode !== 1) throw new Error(`expected exit 1, got ${show(r)}`);
    const lines = expectCleanMessage(r);
    expect(lines[0]).toMatch(
      new RegExp(
        `^klpforge: no space left on device \\(module stage\\): the output dir ${out} is on a filesystem with \\d+ KiB free: free space there or pass another -o/--output$`,
      ),
    );
    expect(await treeState(kernel.source, ['fs/proc/cmdline.c'])).toEqual(treeBefore);
    expect(await cacheState(cache.dir, kernel.fsections)).toEqual(cacheBefore);
    expect(await workDirs(cache.dir)).toEqual([]);
  });
});

const root = process.getuid?.() === 0;
(root ? describe : describe.skip)(
  "klpforge build: the source tree's filesystem full (a tmpfs holding a copy of the tree, in a private mount namespace; needs root)",
  () => {
    // KiB left free before the build: each level runs out of space at a later step.
    const LEVELS = [0, 8, 32, 128];
    let scenario: ScenarioResult;
    let cacheAfter: Awaited<ReturnType<typeof cacheState>>;

    beforeAll(async () => {
      const input = {
        source: kernel.source,
        config,
        vmlinux: kernel.vmlinux,
        cacheDir: cache.dir,
        outDir: path.join(tmp.path, 'full-tree-out'),
        patch: FIXTURE_PATCH,
        touched: await touchedBy(FIXTURE_PATCH),
        freeKiB: LEVELS,
      };
      const script = path.join(REPO_ROOT, 'dist/test/helpers/full-disk-scenario.js');
      const r = await execa('unshare', ['--mount', '--propagation', 'private', process.execPath, script, JSON.stringify(input)], {
        reject: false,
        stdin: 'ignore',
        timeout: 600_000,
      });
      if (r.exitCode !== 0) throw new Error(`full-disk scenario failed (${r.exitCode}):\n${r.stderr}`);
      scenario = JSON.parse(r.stdout) as ScenarioResult;
      cacheAfter = await cacheState(cache.dir, kernel.fsections);
    }, 900_000);

    test('the copy is the same tree to klpforge (same digest, so the cached original is used and no kernel is built)', () => {
      expect(scenario.copyDigest).toBe(scenario.originalDigest);
      expect(scenario.levels.map((l) => l.freeKiB)).toEqual(LEVELS);
    });

    for (const [i, free] of LEVELS.entries()) {
      test(`${free} KiB free: exit 1, one line says the work dir's filesystem is full and what to do; the tree is unchanged and no work dir is left`, () => {
        const l = scenario.levels[i]!;
        expect(l.measuredFreeKiB).toBe(free);
        const r: BuildRun = { exitCode: l.exitCode, signal: l.signal, stdout: l.stdout, stderr: l.stderr, ms: 0 };
        if (r.exitCode !== 1) throw new Error(`expected exit 1, got ${show(r)}`);
        const lines = expectCleanMessage(r);
        const work = path.join(path.dirname(kernel.source), '.klpforge-work');
        expect(lines[0]).toMatch(
          new RegExp(
            `^klpforge: no space left on device \\((checks|patched objects|module) stage\\): the work dir ${work} is on a filesystem with \\d+ KiB free: free space there \\(the work dir has to be on the source tree's filesystem\\)$`,
          ),
        );
        // The failing step's own words follow as detail (ENOSPC, gcc's "No space left on device", ...).
        expect(lines.length).toBeGreaterThan(1);
        if (free === 0) expect(lines[0]).toContain('(checks stage)'); // the very first write fails
        expect(l.after).toEqual(l.before);
        expect(l.leftovers).toEqual([]);
      });
    }

    test('the levels reach different steps (checks, patched objects, module), and the cache is unchanged after all of them', () => {
      const stages = scenario.levels.map((l) => /\((\w[\w ]*) stage\)/.exec(l.stderr)?.[1]);
      expect(new Set(stages).size).toBeGreaterThanOrEqual(3);
      expect(cacheAfter).toEqual(cacheBefore);
    });
  },
);
