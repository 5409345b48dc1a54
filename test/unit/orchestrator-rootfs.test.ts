import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { parseDeb822Sources, parseOneLineSources, pickDebianArchive } from '../../src/orchestrator/runners/apt-sources.js';
import { OrchestratorError } from '../../src/orchestrator/errors.js';
import { ensureRootfs, parseDpkgStatus, STAMP_FILE } from '../../src/orchestrator/runners/rootfs.js';
import { rootfsKey, rootfsName, type RootfsSpec } from '../../src/orchestrator/runners/rootfs-spec.js';

describe('the Debian archive from apt sources', () => {
  // This machine's /etc/apt/sources.list.d/debian.sources, and a disabled third-party stanza.
  const deb822 = [
    'Types: deb',
    '# http://snapshot.debian.org/archive/debian/20250520T000000Z',
    'URIs: http://deb.debian.org/debian',
    'Suites: bookworm bookworm-updates',
    'Components: main',
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
    '',
    'Types: deb',
    'URIs: http://deb.debian.org/debian-security',
    'Suites: bookworm-security',
    'Components: main',
    '',
    'Types: deb',
    'URIs: https://vendor.example/apt',
    'Suites: nodistro',
    'Components: main',
    'Enabled: no',
    '',
  ].join('\n');

  test('deb822: every URI of every enabled deb stanza, with its keyring path', () => {
    expect(parseDeb822Sources(deb822, 'debian.sources')).toEqual([
      {
        uri: 'http://deb.debian.org/debian',
        suites: ['bookworm', 'bookworm-updates'],
        components: ['main'],
        signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
        file: 'debian.sources',
      },
      { uri: 'http://deb.debian.org/debian-security', suites: ['bookworm-security'], components: ['main'], file: 'debian.sources' },
    ]);
  });

  test('one-line format with options; deb-src and comments skipped', () => {
    const text =
      '# comment\ndeb-src http://m/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib # trailing\n';
    expect(parseOneLineSources(text, 'sources.list')).toEqual([
      { uri: 'http://m/debian', suites: ['bookworm'], components: ['main', 'contrib'], signedBy: '/k.gpg', file: 'sources.list' },
    ]);
  });

  test('the release suite is picked, not a vendor repo, -updates or -security; a keyring that does not exist is not passed', () => {
    const vendor = parseOneLineSources(
      'deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\ndeb http://ports/debian-security bookworm-security main\n',
      'a.list',
    );
    const picked = pickDebianArchive([...vendor, ...parseDeb822Sources(deb822, 'debian.sources')]);
    expect(picked).toEqual({
      mirror: 'http://deb.debian.org/debian',
      suite: 'bookworm',
      components: ['main'],
      ...(existsSync('/usr/share/keyrings/debian-archive-keyring.gpg')
        ? { keyring: '/usr/share/keyrings/debian-archive-keyring.gpg' }
        : {}),
    });
    expect(pickDebianArchive(parseOneLineSources('deb [signed-by=/no/such.gpg] http://m/debian trixie main\n', 'x'))).toEqual({
      mirror: 'http://m/debian',
      suite: 'trixie',
      components: ['main'],
    });
    expect(pickDebianArchive(vendor)).toBeUndefined();
  });
});

test('dpkg status: installed packages only, with their versions', () => {
  const status =
    'Package: gcc-12\nStatus: install ok installed\nVersion: 12.2.0-14+deb12u1\n\nPackage: old\nStatus: deinstall ok config-files\nVersion: 1\n';
  expect([...parseDpkgStatus(status)]).toEqual([['gcc-12', '12.2.0-14+deb12u1']]);
});

/**
 * ensureRootfs with a fake debootstrap: it records each call, lays out a
 * tree with a dpkg status listing the --include packages at FAKE_VERSION, and
 * fails or sleeps on request, so caching, locking and cleanup are tested
 * without minutes of downloads (the slow test makes a real one).
 */
describe('ensureRootfs: cache entries are atomic', () => {
  let tmp: DirectoryResult;
  let fake: string;
  let calls: string;
  let cacheDir: string;
  const spec: RootfsSpec = { suite: 'bookworm', mirror: 'http://m/debian', components: ['main'], packages: ['gcc-12=1.0', 'make'] };
  const finalDir = (): string => path.join(cacheDir, rootfsName(spec));

  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
    cacheDir = path.join(tmp.path, 'cache');
    calls = path.join(tmp.path, 'calls');
    fake = path.join(tmp.path, 'debootstrap');
    await writeFile(
      fake,
      [
        '#!/bin/sh',
        'set -e',
        'echo "$*" >> "$CALLS"',
        'include=$(printf "%s\\n" "$@" | sed -n "s/^--include=//p")',
        'target=$(eval echo "\\${$(($# - 1))}")',
        'mkdir -p "$target/bin" "$target/var/lib/dpkg" "$target/var/cache/apt/archives" "$target/debootstrap"',
        'touch "$target/bin/sh" "$target/var/cache/apt/archives/make_1.0_amd64.deb"',
        'for p in $(echo "$include" | tr , " "); do printf "Package: %s\\nStatus: install ok installed\\nVersion: %s\\n\\n" "$p" "${FAKE_VERSION:-1.0}"; done > "$target/var/lib/dpkg/status"',
        '[ -z "$FAKE_SLEEP" ] || sleep "$FAKE_SLEEP"',
        'if [ -n "$FAKE_FAIL" ]; then echo "E: Couldn\'t download packages: make" | tee "$target/debootstrap/debootstrap.log" >&2; exit 1; fi',
      ].join('\n'),
    );
    await chmod(fake, 0o755);
    process.env['CALLS'] = calls;
  });
  afterEach(async () => {
    for (const v of ['CALLS', 'FAKE_VERSION', 'FAKE_FAIL', 'FAKE_SLEEP']) delete process.env[v];
    await tmp.cleanup();
  });

  const callCount = async (): Promise<number> => (await readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

  test('made once in a temp dir, stamped, renamed; then served from the cache', async () => {
    const lines: string[] = [];
    const a = await ensureRootfs({ cacheDir, spec, debootstrap: fake, onProgress: (l) => lines.push(l) });
    expect(a.path).toBe(finalDir());
    expect(a.made).toBe(true);
    expect(a.stamp).toMatchObject({ key: rootfsKey(spec), installed: { 'gcc-12': '1.0', make: '1.0' }, spec });
    expect(JSON.parse(await readFile(path.join(a.path, STAMP_FILE), 'utf8'))).toEqual(a.stamp);
    // debootstrap got names (it cannot pin) and the temp dir beside the final one.
    expect((await readFile(calls, 'utf8')).trim()).toBe(
      `--variant=minbase --components=main --include=gcc-12,make bookworm ${path.join(cacheDir, `.${rootfsName(spec)}.tmp-${process.pid}`)} http://m/debian`,
    );
    expect(await readdir(path.join(a.path, 'var/cache/apt/archives'))).toEqual([]);
    expect(lines[0]).toMatch(
      /^rootfs: debootstrap bookworm from http:\/\/m\/debian into .*\.tmp-\d+ \(minbase \+ 2 packages; a few minutes, once\)$/,
    );

    const b = await ensureRootfs({ cacheDir, spec, debootstrap: fake });
    expect(b).toEqual({ ...a, made: false });
    expect(await callCount()).toBe(1);
  });

  test('two concurrent callers: one makes it, the other waits for the lock and uses it', async () => {
    process.env['FAKE_SLEEP'] = '1';
    const waits: string[] = [];
    const [a, b] = await Promise.all([
      ensureRootfs({ cacheDir, spec, debootstrap: fake, onProgress: (l) => waits.push(l) }),
      ensureRootfs({ cacheDir, spec, debootstrap: fake, onProgress: (l) => waits.push(l) }),
    ]);
    expect(await callCount()).toBe(1);
    expect([a.made, b.made].sort()).toEqual([false, true]);
    expect(waits.filter((l) => l.startsWith('rootfs: waiting for another klpforge'))).toHaveLength(1);
  });

  test('leftovers of a killed run are never trusted: a temp dir is removed, an unstamped final dir is remade', async () => {
    const leftover = path.join(cacheDir, `.${rootfsName(spec)}.tmp-999999`);
    await mkdir(path.join(leftover, 'usr'), { recursive: true });
    await mkdir(path.join(finalDir(), 'usr'), { recursive: true });
    const r = await ensureRootfs({ cacheDir, spec, debootstrap: fake });
    expect(r.made).toBe(true);
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(path.join(finalDir(), STAMP_FILE))).toBe(true);
    // A stamp for another spec (another key) does not make an entry of this one.
    const other = { ...spec, packages: ['make'] };
    await mkdir(path.join(cacheDir, rootfsName(other)));
    await copyFile(path.join(finalDir(), STAMP_FILE), path.join(cacheDir, rootfsName(other), STAMP_FILE));
    const remade = await ensureRootfs({ cacheDir, spec: other, debootstrap: fake });
    expect([remade.made, remade.stamp.key]).toEqual([true, rootfsKey(other)]);
  });

  test('a failed debootstrap leaves neither the entry nor its temp dir, and names the log it kept', async () => {
    process.env['FAKE_FAIL'] = '1';
    const e = await ensureRootfs({ cacheDir, spec, debootstrap: fake }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OrchestratorError);
    expect((e as OrchestratorError).code).toBe('ORCH_ROOTFS_FAILED');
    const log = path.join(cacheDir, `${rootfsName(spec)}.debootstrap.log`);
    expect((e as Error).message).toBe(
      `debootstrap bookworm from http://m/debian failed (exit 1): E: Couldn't download packages: make${process.getuid?.() === 0 ? '' : ' (debootstrap must run as root: run this once with sudo)'}; log: ${log}`,
    );
    expect((await readdir(cacheDir)).filter((n) => !n.endsWith('.lock')).sort()).toEqual([path.basename(log)]);
  });

  test('a pinned compiler the archive does not have is refused before the entry exists', async () => {
    process.env['FAKE_VERSION'] = '2.0';
    await expect(ensureRootfs({ cacheDir, spec, debootstrap: fake })).rejects.toThrow(
      "debootstrap bookworm from http://m/debian: gcc-12 there is 2.0 but the host has 1.0; objects built in the sandbox would differ from the host's: upgrade the host's gcc-12 to 2.0 or use --runner host",
    );
    expect(existsSync(finalDir())).toBe(false);
  });

  test('a debootstrap that is not installed says how to get it', async () => {
    await expect(ensureRootfs({ cacheDir, spec, debootstrap: 'klpforge-no-such-debootstrap' })).rejects.toThrow(
      "klpforge-no-such-debootstrap is not installed: apt-get install debootstrap (it makes the bwrap runner's rootfs), or pass the rootfs directory to use",
    );
  });
});
