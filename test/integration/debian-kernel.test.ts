import { jest } from '@jest/globals';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { aptNames, aptPackage } from '../../src/orchestrator/acquire/apt.js';
import { ensureDebianSource, newestDebianRelease } from '../../src/orchestrator/acquire/debian-kernel.js';
import { readElfFile } from '../../src/elf/index.js';
import { firstMismatch, runningSymbols } from '../../src/orchestrator/checks/running-match.js';
import { buildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { includeScan } from '../../src/orchestrator/kbuild/include-scan.js';
import { recordedObjectOwners } from '../../src/orchestrator/kbuild/object-owner.js';
import { HostRunner } from '../../src/orchestrator/runners/runner.js';
import { modulesWithDependencies } from '../../src/orchestrator/acquire/kernel-modules.js';
import { INTEGRATION_DIR, klpforge } from '../helpers/integration.js';
import { REPO_ROOT } from '../helpers/kernel.js';

/**
 * Issue #12's proof: livepatches for Debian's own newest 6.1 kernel, built
 * with nothing but `--kernel debian:RELEASE` (source, config and symbols
 * fetched from the archive, the lazy original) and verified by booting
 * Debian's own vmlinuz. The release is looked up in the archive at run time:
 * whatever is newest when CI runs.
 */
const CACHE = process.env.KLPFORGE_CACHE ?? path.join(os.homedir(), '.cache/klpforge');
jest.setTimeout(1_200_000);

let release: string;
let out: string;

beforeAll(async () => {
  const newest = await newestDebianRelease('6.1', 'amd64');
  if (newest === undefined) throw new Error('apt knows no linux-image-6.1.0-*-amd64: run apt-get update');
  release = newest;
  out = await mkdtemp(path.join(os.tmpdir(), 'klpforge-debian-'));
});
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

interface BuildJson {
  ok: boolean;
  module?: string;
  original?: { mode: string; kernel?: { release: string } };
  stages?: Array<{ stage: string; ms: number }>;
  error?: { code: string; message: string };
}

async function buildFor(
  patch: string,
  name: string,
  extra: readonly string[] = [],
  cacheDir = CACHE,
): Promise<{ exitCode: number; json: BuildJson; stderr: string; stdout: string }> {
  const r = await klpforge(
    ['build', patch, '--kernel', `debian:${release}`, '--cache-dir', cacheDir, '-o', out, '-n', name, '-j', '2', '--json', ...extra],
    1_200_000,
  );
  let json: BuildJson = { ok: false };
  try {
    json = JSON.parse(r.stdout) as BuildJson;
  } catch {
    /* reported by the caller */
  }
  return { ...r, json };
}

interface VerifyJson {
  ok: boolean;
  kernelProblems: unknown[];
  taint: { letters: string; unexpected: unknown[] };
  guest: { kernelRelease: string };
}

async function verifyOn(ko: string, check: string): Promise<{ exitCode: number; report: VerifyJson; raw: string }> {
  const r = await klpforge(
    ['verify', ko, '--kernel', `debian:${release}`, '--cache-dir', CACHE, '--check-file', check, '--json', '--timeout', '240'],
    600_000,
  );
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) as never, raw: `${r.stdout}\n${r.stderr}` };
}

const CASES = [
  // The README's example patch, and kpatch-style case 11: a shadow variable and a post-unpatch callback.
  {
    what: 'cmdline.patch',
    patch: path.join(REPO_ROOT, 'kernel-fixtures/examples/cmdline.patch'),
    check: 'cat /proc/cmdline; grep -q livepatched-by-klpforge /proc/cmdline',
    name: 'deb-cmdline',
  },
  {
    what: '11-shadow-meminfo',
    patch: path.join(INTEGRATION_DIR, '11-shadow-meminfo', 'fix.patch'),
    checkFile: path.join(INTEGRATION_DIR, '11-shadow-meminfo', 'check.sh'),
    name: 'deb-shadow',
  },
];

describe.each(CASES)('a livepatch for the newest Debian 6.1 kernel: $what', ({ patch, check, checkFile, name }) => {
  test("builds from --kernel debian:RELEASE alone with the lazy original, and Debian's own vmlinuz proves it before, loaded and after", async () => {
    const built = await buildFor(patch, name);
    expect({ exit: built.exitCode, error: built.json.error }).toEqual({ exit: 0, error: undefined });
    expect(built.json.original).toMatchObject({ mode: 'lazy', kernel: { release } });
    expect(built.json.stages?.map((s) => s.stage)).toEqual(
      expect.arrayContaining(['kernel', 'original', 'originals', 'match', 'diff', 'generate']),
    );
    const modinfo = await execa('modinfo', ['-F', 'vermagic', built.json.module!]);
    expect(modinfo.stdout.split(' ')[0]).toBe(release);

    let file = checkFile;
    if (file === undefined) {
      file = path.join(out, `${name}-check.sh`);
      await writeFile(file, `${check}\n`);
    }
    const v = await verifyOn(built.json.module!, file);
    if (v.exitCode !== 0) throw new Error(v.raw.slice(-6000));
    // Debian's own kernel booted; its log shows no problem; the only taints are livepatch, out-of-tree and unsigned.
    expect({
      ok: v.report.ok,
      release: v.report.guest.kernelRelease,
      problems: v.report.kernelProblems,
      taint: v.report.taint.letters,
    }).toEqual({ ok: true, release, problems: [], taint: 'OEK' });
  });
});

test("objects spread over the whole configuration, compiled in the lazy tree, match Debian's vmlinux and modules function by function", async () => {
  const built = await buildFor(path.join(INTEGRATION_DIR, '01-cmdline-extra-word', 'fix.patch'), 'deb-sample');
  expect(built.exitCode).toBe(0);
  const tree = (built.json.original as unknown as { buildDir: string }).buildDir;
  const kernel = JSON.parse(await readFile(path.join(CACHE, 'debian', release, 'kernel.json'), 'utf8')) as {
    sourceDir: string;
    vmlinux: string;
    modulesDir: string;
    cc: string;
  };
  const runner = new HostRunner();
  const scan = await includeScan({
    buildDir: tree,
    sourceDir: kernel.sourceDir,
    runner,
    makeVars: [`CC=${kernel.cc}`],
    arch: 'x86',
    jobs: 2,
  });
  const all = [...scan.objects.keys()].filter((o) => !o.includes('..')).sort();
  const sample = all.filter((_, i) => i % Math.floor(all.length / 40) === 0).slice(0, 40);
  await execa(
    'make',
    [
      '-C',
      kernel.sourceDir,
      `O=${tree}`,
      `CC=${kernel.cc}`,
      `KERNELRELEASE=${release}`,
      '-k',
      '-j2',
      'KCFLAGS=-ffunction-sections -fdata-sections',
      ...sample,
    ],
    { reject: false },
  );
  const index = await buildIndex(tree);
  const owner = await recordedObjectOwners(index, path.join(path.dirname(kernel.modulesDir), 'modules.order'));
  const vmlinux = runningSymbols(await readElfFile(kernel.vmlinux), 'vmlinux');
  const problems: string[] = [];
  let checked = 0;
  for (const object of sample) {
    const record = index.objects.get(object);
    if (!record?.livepatch.livepatchable || !record.source.endsWith('.c')) continue;
    const o = owner(object);
    const running = o.kind === 'vmlinux' ? vmlinux : runningSymbols(await readElfFile(path.join(kernel.modulesDir, o.ko)), o.ko);
    const p = firstMismatch(await readElfFile(path.join(tree, object)), object, running);
    if (p) problems.push(p.message);
    checked++;
  }
  expect(checked).toBeGreaterThanOrEqual(25);
  expect(problems).toEqual([]);
});

test("an original compiled from a neighbouring release's source is refused by the running-kernel check, naming the function", async () => {
  // The previous release, and a .c file its source has differently from the newest's.
  const { theirs, changed } = await previousSource();
  expect(changed.length).toBeGreaterThan(0);
  const file = changed[0]!;
  // Any patch to that file will do: the check runs on the original object, before any diffing.
  const patchFile = path.join(out, 'neighbour.patch');
  const lines = (await readFile(path.join(theirs, file), 'utf8')).split('\n');
  await writeFile(
    patchFile,
    [`--- a/${file}`, `+++ b/${file}`, `@@ -1,1 +1,2 @@`, "+/* klpforge: a neighbouring release's source */", ` ${lines[0]}`, ''].join(
      '\n',
    ),
  );
  const r = await buildFor(patchFile, 'deb-neighbour', ['-s', theirs]);
  expect({ exit: r.exitCode, code: r.json.error?.code }).toEqual({ exit: 1, code: 'BUILD_ORIGINAL_MISMATCH' });
  expect(r.json.error!.message).toMatch(
    new RegExp(
      `^${file.replace(/\.c$/, '.o').replace(/[.]/g, '\\.')}: \\S+ (is \\d+ bytes compiled here but \\d+ bytes|is not) in the running kernel`,
    ),
  );
  // The release's own source passes the same check: the patch (a comment) then changes no function.
  const own = await buildFor(patchFile, 'deb-own');
  expect({ exit: own.exitCode, code: own.json.error?.code }).toEqual({ exit: 3, code: 'BUILD_NO_CHANGE' });
});

/** The release before the newest (same flavour) whose packages the archive still has, all of them. */
async function previousRelease(): Promise<{ release: string; version: string }> {
  const abi = Number(/^\d+\.\d+\.\d+-(\d+)-/.exec(release)![1]);
  const flavour = release.replace(/^[\d.]+-\d+-/, '');
  for (let n = abi - 1; n > abi - 6; n--) {
    const r = `6.1.0-${n}-${flavour}`;
    const image = (await aptPackage(`linux-image-${r}`)) ?? (await aptPackage(`linux-image-${r}-unsigned`));
    if (!image) continue;
    const parts = await Promise.all(
      [`linux-image-${r}-dbg`, `linux-headers-${r}`, 'linux-source-6.1'].map((n2) => aptPackage(n2, image.version)),
    );
    if (parts.every((x) => x !== undefined)) return { release: r, version: image.version };
  }
  throw new Error(`the archive keeps no whole release of 6.1 before ${release}`);
}

/** The previous release's source and the .c files the newest release changed in it. */
async function previousSource(): Promise<{
  previous: { release: string; version: string };
  theirs: string;
  ours: string;
  changed: string[];
}> {
  const previous = await previousRelease();
  const theirs = await ensureDebianSource('linux-source-6.1', previous.version, CACHE);
  const ours = (JSON.parse(await readFile(path.join(CACHE, 'debian', release, 'kernel.json'), 'utf8')) as { sourceDir: string }).sourceDir;
  const diff = await execa('diff', ['-rq', '-x', '.klpforge-unpacked', theirs, ours], { reject: false });
  const changed = diff.stdout
    .split('\n')
    .map((l) => /^Files (\S+) and \S+ differ$/.exec(l)?.[1])
    .filter((f): f is string => f !== undefined && f.endsWith('.c'))
    .map((f) => path.relative(theirs, f))
    .sort();
  return { previous, theirs, ours, changed };
}

test('the fix Debian shipped in the newest release, built for the previous release from their difference, patches that running kernel live', async () => {
  const { previous, theirs, ours, changed } = await previousSource();
  expect(changed.length).toBeGreaterThan(0);
  const patchFile = path.join(out, 'debian-update.patch');
  const parts = await Promise.all(
    changed.map(
      async (f) =>
        (await execa('diff', ['-u', '--label', `a/${f}`, '--label', `b/${f}`, path.join(theirs, f), path.join(ours, f)], { reject: false }))
          .stdout,
    ),
  );
  await writeFile(patchFile, `${parts.join('\n')}\n`);
  const r = await klpforge(
    [
      'build',
      patchFile,
      '--kernel',
      `debian:${previous.release}`,
      '--cache-dir',
      CACHE,
      '-o',
      out,
      '-n',
      'deb-update',
      '-j',
      '2',
      '--json',
    ],
    1_200_000,
  );
  const report = JSON.parse(r.stdout) as BuildJson & { functions: Array<{ objname: string; functions: unknown[] }> };
  if (r.exitCode !== 0) throw new Error(`${changed.join(', ')}: ${report.error?.message ?? r.stderr.slice(-3000)}`);

  // Each patched object is live while the patch is enabled; a patched module is loaded (with what it needs) first.
  const kernel = JSON.parse(await readFile(path.join(CACHE, 'debian', previous.release, 'kernel.json'), 'utf8')) as { modulesDir: string };
  const objects = [...new Set(report.functions.map((f) => f.objname))];
  const modules = objects.filter((o) => o !== 'vmlinux');
  const files = modules.length > 0 ? await modulesWithDependencies(kernel.modulesDir, modules) : [];
  const load = files.map(
    (f) => `grep -q '^${path.basename(f.rel, '.ko').replace(/-/g, '_')} ' /proc/modules || insmod /modules/${f.rel} || exit 2`,
  );
  const check = path.join(out, 'update-check.sh');
  await writeFile(
    check,
    [
      '#!/bin/sh',
      ...load,
      ...objects.map(
        (o) =>
          `cat /sys/kernel/livepatch/livepatch_deb_update/${o}/patched 2>/dev/null | grep -qx 1 || { echo "${o} not patched"; exit 1; }`,
      ),
      'echo patched',
      '',
    ].join('\n'),
  );
  const v = await klpforge(
    [
      'verify',
      report.module!,
      '--kernel',
      `debian:${previous.release}`,
      '--cache-dir',
      CACHE,
      ...modules.flatMap((m) => ['--with-module', m]),
      '--check-file',
      check,
      '--json',
      '--timeout',
      '240',
    ],
    600_000,
  );
  if (v.exitCode !== 0) throw new Error(`${v.stdout.slice(-4000)}\n${v.stderr.slice(-2000)}`);
});

describe('bad inputs: one clear line and exit 1', () => {
  const oneLine = (r: { exitCode: number; stderr: string }): string => {
    expect(r.exitCode).toBe(1);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('klpforge: ') && !/^klpforge: (ok|FAILED|\S+: started)/.test(l) && !l.includes(': started'));
    return lines[lines.length - 1]!;
  };
  const patch = path.join(INTEGRATION_DIR, '01-cmdline-extra-word', 'fix.patch');

  test('an unknown release is named, with the newest releases the archive has', async () => {
    const r = await klpforge(['build', patch, '--kernel', 'debian:6.1.0-999-amd64', '--cache-dir', CACHE, '-o', out]);
    expect(oneLine(r)).toMatch(
      /debian:6\.1\.0-999-amd64: the Debian archive apt knows has no linux-image-6\.1\.0-999-amd64; newest it has: 6\.1\.0-\d+-amd64/,
    );
  });

  test('a release whose -dbg package the archive no longer has is refused before anything is downloaded', async () => {
    const images = (await aptNames('linux-image-6.1.0-')).filter((n) => /^linux-image-6\.1\.0-\d+-amd64$/.test(n));
    let bare: string | undefined;
    for (const n of images) if (!bare && !(await aptPackage(`${n}-dbg`))) bare = n.slice('linux-image-'.length);
    if (bare === undefined) throw new Error('every 6.1 image in the archive has its -dbg package: no release to test this with');
    const cache = await mkdtemp(path.join(os.tmpdir(), 'klpforge-nodbg-'));
    try {
      const r = await klpforge(['build', patch, '--kernel', `debian:${bare}`, '--cache-dir', cache, '-o', out]);
      expect(oneLine(r)).toMatch(new RegExp(`linux-image-${bare}-dbg \\S+ is not in the archive apt knows`));
      expect(await readdir(cache).catch(() => [])).not.toContain('debian');
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });

  test('no network to the archive is said as such', async () => {
    const cache = await mkdtemp(path.join(os.tmpdir(), 'klpforge-nonet-'));
    try {
      // A network namespace of its own: apt-cache still reads the local lists, apt-get download cannot connect.
      const cli = path.resolve('bin/klpforge.js');
      const r = await execa(
        'unshare',
        ['-n', process.execPath, cli, 'build', patch, '--kernel', `debian:${release}`, '--cache-dir', cache, '-o', out],
        { reject: false, timeout: 300_000 },
      );
      expect(oneLine({ exitCode: r.exitCode ?? -1, stderr: r.stderr })).toMatch(
        /cannot download linux-image-\S+ \S+ into .*no network to the Debian archive/,
      );
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });

  test('a disk too small for the packages and source is refused before downloading', async () => {
    const cache = await mkdtemp(path.join(os.tmpdir(), 'klpforge-small-'));
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', cache]);
    try {
      await mkdir(path.join(cache, 'x'), { recursive: true });
      const r = await klpforge(['build', patch, '--kernel', `debian:${release}`, '--cache-dir', cache, '-o', out]);
      expect(oneLine(r)).toMatch(
        /has 0\.\d GiB free, but Debian kernel \S+ \(packages, image, symbols(, source)?\) needs about \d+\.\d GiB: free space there or pass --cache-dir on a larger disk/,
      );
    } finally {
      await execa('umount', [cache], { reject: false });
      await rm(cache, { recursive: true, force: true });
    }
  });
});
