import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { OrchestratorError } from '../errors.js';
import { withFileLock } from '../original/file-lock.js';
import { removeTree } from '../original/remove-tree.js';
import {
  defaultRootfsCacheDir,
  defaultRootfsSpec,
  packageName,
  pinnedVersion,
  ROOTFS_RECIPE,
  rootfsKey,
  rootfsName,
  type RootfsSpec,
} from './rootfs-spec.js';

/**
 * The Debian rootfs the bwrap runner builds in, made once with debootstrap
 * and cached. A cache entry is trusted only when its directory exists under
 * its final name AND holds a stamp naming its key: it is made in a temp dir
 * beside it and renamed only once debootstrap succeeded, the packages were
 * checked and the stamp written, so an interrupted run leaves at most a temp
 * dir, which the next run (holding the lock) removes.
 */

export const STAMP_FILE = '.klpforge-rootfs.json';

export interface RootfsStamp {
  recipe: number;
  key: string;
  spec: RootfsSpec;
  /** Installed version of each package of the spec. */
  installed: Record<string, string>;
  /** When it was made (ISO 8601) and how long debootstrap took. */
  created: string;
  seconds: number;
}

export interface Rootfs {
  /** The rootfs directory (absolute). */
  path: string;
  stamp: RootfsStamp;
  /** True when this call ran debootstrap; false when the cached one was used. */
  made: boolean;
}

export interface EnsureRootfsOptions {
  /** Where rootfs entries live; defaultRootfsCacheDir() if not given. */
  cacheDir?: string;
  /** The full spec, or parts of it on top of defaultRootfsSpec(). */
  spec?: Partial<RootfsSpec>;
  /** Progress lines (what is being done and why it takes minutes). */
  onProgress?: (line: string) => void;
  /** The debootstrap program (tests substitute a fake one). */
  debootstrap?: string;
}

/** The rootfs for `spec`, made now if the cache has none. Concurrent callers wait for one maker. */
export async function ensureRootfs(options: EnsureRootfsOptions = {}): Promise<Rootfs> {
  const spec = isFullSpec(options.spec) ? options.spec : await defaultRootfsSpec(options.spec);
  const cacheDir = path.resolve(options.cacheDir ?? defaultRootfsCacheDir());
  const name = rootfsName(spec);
  const dir = path.join(cacheDir, name);
  const key = rootfsKey(spec);
  const progress = options.onProgress ?? (() => {});

  const cached = await readStamp(dir, key);
  if (cached) return { path: dir, stamp: cached, made: false };

  await mkdir(cacheDir, { recursive: true });
  return withFileLock(
    path.join(cacheDir, `.${name}.lock`),
    async () => {
      // Another process may have made it while we waited for the lock.
      const made = await readStamp(dir, key);
      if (made) return { path: dir, stamp: made, made: false };
      // Nothing else can be building this entry now: every leftover is from a dead run, never to be trusted.
      for (const leftover of (await readdir(cacheDir)).filter((n) => n.startsWith(`.${name}.tmp-`))) {
        await removeTree(path.join(cacheDir, leftover));
      }
      if (existsSync(dir)) await removeTree(dir);

      const tmp = path.join(cacheDir, `.${name}.tmp-${process.pid}`);
      try {
        const log = path.join(cacheDir, `${name}.debootstrap.log`);
        const stamp = await makeRootfs(spec, tmp, key, options.debootstrap ?? 'debootstrap', log, progress);
        await rename(tmp, dir);
        // A failed attempt's log is history now.
        await rm(log, { force: true });
        progress(`rootfs: ${dir} ready (debootstrap took ${Math.round(stamp.seconds)} s)`);
        return { path: dir, stamp, made: true };
      } catch (e) {
        await removeTree(tmp);
        throw e;
      }
    },
    () => progress(`rootfs: waiting for another klpforge that is making ${dir}`),
  );
}

function isFullSpec(s: Partial<RootfsSpec> | undefined): s is RootfsSpec {
  return !!s && !!s.suite && !!s.mirror && !!s.components && !!s.packages;
}

/** The stamp of a complete entry for `key`, or undefined for a missing, foreign or unfinished one. */
export async function readStamp(dir: string, key: string): Promise<RootfsStamp | undefined> {
  try {
    const stamp = JSON.parse(await readFile(path.join(dir, STAMP_FILE), 'utf8')) as RootfsStamp;
    return stamp.recipe === ROOTFS_RECIPE && stamp.key === key ? stamp : undefined;
  } catch {
    return undefined;
  }
}

async function makeRootfs(
  spec: RootfsSpec,
  tmp: string,
  key: string,
  debootstrap: string,
  logCopy: string,
  progress: (line: string) => void,
): Promise<RootfsStamp> {
  const where = `debootstrap ${spec.suite} from ${spec.mirror}`;
  progress(`rootfs: ${where} into ${tmp} (minbase + ${spec.packages.length} packages; a few minutes, once)`);
  const args = [
    '--variant=minbase',
    `--components=${spec.components.join(',')}`,
    `--include=${spec.packages.map(packageName).join(',')}`,
    ...(spec.keyring ? [`--keyring=${spec.keyring}`] : []),
    spec.suite,
    tmp,
    spec.mirror,
  ];
  const started = process.hrtime.bigint();
  const r = await execa(debootstrap, args, {
    reject: false,
    all: true,
    stdin: 'ignore',
    // Non-root PATHs lack /usr/sbin, where Debian installs debootstrap.
    env: { PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin` },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.exitCode !== 0) {
    if ((r as { code?: string }).code === 'ENOENT') {
      throw new OrchestratorError(
        'ORCH_RUNNER_UNAVAILABLE',
        `${debootstrap} is not installed: apt-get install debootstrap (it makes the bwrap runner's rootfs), or pass the rootfs directory to use`,
      );
    }
    const log = path.join(tmp, 'debootstrap/debootstrap.log');
    if (existsSync(log)) await copyFile(log, logCopy).catch(() => {});
    const last =
      (r.all ?? '')
        .split('\n')
        .filter((l) => /^E:|error|denied/i.test(l))
        .pop() ??
      (r.all ?? '').trim().split('\n').pop() ??
      '';
    const root = process.getuid?.() === 0 ? '' : ' (debootstrap must run as root: run this once with sudo)';
    throw new OrchestratorError(
      'ORCH_ROOTFS_FAILED',
      `${where} failed (exit ${r.exitCode ?? r.signal}): ${last.trim()}${root}; log: ${existsSync(logCopy) ? logCopy : 'none'}`,
    );
  }

  const installed = await checkInstalled(tmp, spec, where);
  // The .debs stay in the apt cache after debootstrap; nothing in a build needs them.
  await removeDebs(tmp);
  const stamp: RootfsStamp = { recipe: ROOTFS_RECIPE, key, spec, installed, created: new Date().toISOString(), seconds };
  await writeFile(path.join(tmp, STAMP_FILE), `${JSON.stringify(stamp, null, 2)}\n`);
  return stamp;
}

/** Every package of the spec is installed, at its pinned version when it has one. */
async function checkInstalled(root: string, spec: RootfsSpec, where: string): Promise<Record<string, string>> {
  const status = parseDpkgStatus(await readFile(path.join(root, 'var/lib/dpkg/status'), 'utf8').catch(() => ''));
  const installed: Record<string, string> = {};
  for (const p of spec.packages) {
    const name = packageName(p);
    const version = status.get(name);
    if (version === undefined) {
      throw new OrchestratorError(
        'ORCH_ROOTFS_FAILED',
        `${where}: package ${name} is not installed in the result: check that ${spec.suite} has it`,
      );
    }
    const pinned = pinnedVersion(p);
    if (pinned !== undefined && pinned !== version) {
      throw new OrchestratorError(
        'ORCH_ROOTFS_FAILED',
        `${where}: ${name} there is ${version} but the host has ${pinned}; objects built in the sandbox would differ from the host's: upgrade the host's ${name} to ${version} or use --runner host`,
      );
    }
    installed[name] = version;
  }
  return installed;
}

/** Installed packages (Status: install ok installed) of a dpkg status file → version. */
export function parseDpkgStatus(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const stanza of text.split(/\n\n+/)) {
    const field = (f: string): string | undefined => new RegExp(`^${f}: (.*)$`, 'm').exec(stanza)?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    if (name && version && field('Status') === 'install ok installed') out.set(name, version);
  }
  return out;
}

async function removeDebs(root: string): Promise<void> {
  const archives = path.join(root, 'var/cache/apt/archives');
  const names = await readdir(archives).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.endsWith('.deb')).map((n) => rm(path.join(archives, n), { force: true })));
}
