import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { CacheKeyInputs } from './cache-key.js';
import { tryAcquireLock } from './cache-lock.js';
import { SetupError } from '../setup-errors.js';
import { stopOrphansIn } from '../runners/orphans.js';

/**
 * The on-disk cache of original kernel builds, and the rule that makes it
 * safe against interruption at any moment.
 *
 *     CACHE/entries/KEY.json   the pointer: which build dir is the entry for KEY
 *     CACHE/builds/KEY-RAND/   build dirs (make O=), built where they stay
 *     CACHE/locks/KEY.lock     held while KEY is being built (cache-lock.ts)
 *     CACHE/logs/KEY-RAND.log  make's output of each build
 *
 * Why not "build in a temp dir, rename it into place": kbuild records the
 * absolute O= path (objtool is built with it, in tools/objtool/.*.cmd), so
 * after a rename `make O=NEW` rebuilds objtool and then, as every object
 * depends on objtool, the whole kernel (shown in test/slow/orchestrator-original-cache).
 * So a build dir is made at its final path, with a random suffix so a retry
 * never reuses a half-built one, and the *pointer* is the atomic commit:
 * after make succeeds a stamp is written into the build dir, then the pointer
 * is written to a temp name, fsynced and renamed to entries/KEY.json. Until
 * that rename nothing refers to the build dir; after it, the entry is whole.
 *
 * An entry is trusted only if its pointer parses, names this key, and its
 * build dir exists and holds a stamp for this key (or, adopted, still looks
 * like a complete build). Leftovers of interrupted builds (no pointer to
 * them) are removed under their key's lock; one that completed but was not
 * committed (killed between stamp and rename) is committed instead.
 */
export interface CacheLayout {
  root: string;
  entries: string;
  builds: string;
  locks: string;
  logs: string;
}

export function cacheLayout(root: string): CacheLayout {
  return {
    root,
    entries: path.join(root, 'entries'),
    builds: path.join(root, 'builds'),
    locks: path.join(root, 'locks'),
    logs: path.join(root, 'logs'),
  };
}

export async function prepareCacheDirs(l: CacheLayout): Promise<void> {
  try {
    await Promise.all([l.entries, l.builds, l.locks, l.logs].map((d) => mkdir(d, { recursive: true })));
  } catch (e) {
    throw new SetupError(
      'CACHE_UNUSABLE',
      `${l.root}: cannot create the cache there (${(e as NodeJS.ErrnoException).code ?? String(e)}): pass a writable --cache-dir`,
    );
  }
}

export interface CacheEntryRecord {
  format: 1;
  key: string;
  /** Absolute path of the complete build dir (make O=). */
  buildDir: string;
  /** Registered with adoptBuild (a build dir outside the cache, never removed by it) rather than built here. */
  adopted: boolean;
  created: string;
  /** CC/AS/LD steps the build took: the progress estimate of the next build. */
  objects: number;
  /** Options set to y/m in its config, to scale that estimate to another config. */
  enabledOptions: number;
  inputs: CacheKeyInputs;
}

/** Written into a build dir made here, once make has succeeded. */
export const STAMP_FILE = '.klpforge-original-complete';

/** Everything the entry record needs, so a build completed but never committed can be committed later. */
export interface BuildStamp {
  key: string;
  completed: string;
  objects: number;
  enabledOptions: number;
  inputs: CacheKeyInputs;
}

export function recordFromStamp(buildDir: string, stamp: BuildStamp): CacheEntryRecord {
  return {
    format: 1,
    key: stamp.key,
    buildDir,
    adopted: false,
    created: stamp.completed,
    objects: stamp.objects,
    enabledOptions: stamp.enabledOptions,
    inputs: stamp.inputs,
  };
}

const pointerFile = (l: CacheLayout, key: string): string => path.join(l.entries, `${key}.json`);
export const lockFile = (l: CacheLayout, key: string): string => path.join(l.locks, `${key}.lock`);

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export async function readStamp(buildDir: string): Promise<BuildStamp | undefined> {
  return readJson<BuildStamp>(path.join(buildDir, STAMP_FILE));
}

/** What an adopted build dir must still have to be trusted (adoptBuild checked more when registering it). */
export async function looksLikeCompleteBuild(buildDir: string): Promise<boolean> {
  const present = await Promise.all(
    ['Makefile', 'source', '.config', 'vmlinux.o', 'Module.symvers'].map((f) =>
      stat(path.join(buildDir, f)).then(
        () => true,
        () => false,
      ),
    ),
  );
  return present.every(Boolean);
}

async function isValid(record: CacheEntryRecord | undefined, key: string): Promise<boolean> {
  if (record?.format !== 1 || record.key !== key || typeof record.buildDir !== 'string') return false;
  if (record.adopted) return looksLikeCompleteBuild(record.buildDir);
  return (await readStamp(record.buildDir))?.key === key;
}

/** The trusted entry for KEY, or undefined. Needs no lock: committed entries never change. */
export async function lookupEntry(l: CacheLayout, key: string): Promise<CacheEntryRecord | undefined> {
  const record = await readJson<CacheEntryRecord>(pointerFile(l, key));
  return (await isValid(record, key)) ? record : undefined;
}

/** Every trusted entry (for estimates and listings). */
export async function listEntries(l: CacheLayout): Promise<CacheEntryRecord[]> {
  const names = await readdir(l.entries).catch(() => [] as string[]);
  const keys = names.filter((n) => /^[0-9a-f]+\.json$/.test(n)).map((n) => n.slice(0, -'.json'.length));
  const records = await Promise.all(keys.map((k) => lookupEntry(l, k)));
  return records.filter((r): r is CacheEntryRecord => r !== undefined);
}

/** Writes `text` to `file` durably: temp name, fsync, rename, fsync of the directory. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** The commit point of an entry. Call with KEY's lock held. */
export async function commitEntry(l: CacheLayout, record: CacheEntryRecord): Promise<void> {
  await writeFileAtomic(pointerFile(l, record.key), `${JSON.stringify(record, null, 1)}\n`);
}

/** `KEY` of a build dir named `KEY-RAND`. */
function keyOfBuildDir(name: string): string | undefined {
  return /^([0-9a-f]+)-[0-9a-f]+$/.exec(name)?.[1];
}

export interface SweepResult {
  removed: string[];
  /** Completed but uncommitted build dirs that were committed. */
  recovered: string[];
}

/**
 * Cleans KEY's part of the cache; call with KEY's lock held. Build dirs of
 * KEY that the entry does not point to are removed, except that when there is
 * no trusted entry, a build dir with a stamp for KEY becomes the entry.
 */
export async function sweepKey(l: CacheLayout, key: string): Promise<SweepResult> {
  const result: SweepResult = { removed: [], recovered: [] };
  let entry = await lookupEntry(l, key);
  if (entry === undefined) await unlink(pointerFile(l, key)).catch(() => undefined);
  for (const name of await readdir(l.entries).catch(() => [] as string[])) {
    if (name.startsWith(`${key}.json.tmp-`)) await unlink(path.join(l.entries, name)).catch(() => undefined);
  }
  const dirs = (await readdir(l.builds).catch(() => [] as string[])).filter((n) => keyOfBuildDir(n) === key);
  for (const name of dirs) {
    const dir = path.join(l.builds, name);
    if (entry?.buildDir === dir) continue;
    const stamp = entry === undefined ? await readStamp(dir) : undefined;
    if (stamp?.key === key) {
      entry = recordFromStamp(dir, stamp);
      await commitEntry(l, entry);
      result.recovered.push(dir);
      continue;
    }
    // A run killed during its build leaves make running there (its lock is free now): stop it first.
    await stopOrphansIn(dir);
    await rm(dir, { recursive: true, force: true });
    result.removed.push(dir);
  }
  return result;
}

/**
 * Sweeps every key that has build dirs and whose lock is free (a key being
 * built by a live process is left alone). `heldKey` is a key whose lock the
 * caller already holds.
 */
export async function sweepLeftovers(l: CacheLayout, heldKey?: string): Promise<SweepResult> {
  const total: SweepResult = { removed: [], recovered: [] };
  const names = await readdir(l.builds).catch(() => [] as string[]);
  const keys = [...new Set(names.map(keyOfBuildDir).filter((k): k is string => k !== undefined))];
  for (const key of keys) {
    const entry = await lookupEntry(l, key);
    const unreferenced = names.filter((n) => keyOfBuildDir(n) === key && path.join(l.builds, n) !== entry?.buildDir);
    if (unreferenced.length === 0) continue;
    const lock = key === heldKey ? undefined : await tryAcquireLock(lockFile(l, key));
    if (key !== heldKey && lock === undefined) continue;
    try {
      const r = await sweepKey(l, key);
      total.removed.push(...r.removed);
      total.recovered.push(...r.recovered);
    } finally {
      await lock?.release();
    }
  }
  return total;
}
