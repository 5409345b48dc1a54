import { randomBytes } from 'node:crypto';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { SetupError } from '../setup-errors.js';
import { startTicks } from '../runners/orphans.js';

/**
 * A lock file naming its holder (pid, host, the process's start time), so a
 * second klpforge building the same cache entry waits for the first instead
 * of building it twice, and a lock left by a killed process is broken instead
 * of blocking forever.
 *
 * - Taking it is atomic: the holder's record is written to a private file and
 *   hard-linked to the lock name (link fails if the name exists), so the lock
 *   file is never seen half-written.
 * - A holder is dead when its pid no longer runs on this host, or runs with
 *   another start time (the pid was reused). A holder on another host
 *   (a cache on NFS) cannot be checked and is waited for.
 * - Breaking a dead holder's lock takes a short-lived second lock (LOCK.break)
 *   and re-reads the lock under it, so two waiters that both saw the same dead
 *   holder cannot both break it and then remove each other's fresh lock.
 */
export interface LockHolder {
  pid: number;
  host: string;
  /** Field 22 of /proc/PID/stat (clock ticks since boot), when /proc exists. */
  startTime?: string;
  since: string;
}

export interface HeldLock {
  file: string;
  holder: LockHolder;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Called once, when the lock is found held by a live process and this call starts waiting. */
  onWait?: (holder: LockHolder) => void;
  /** Give up after this long (default: wait as long as the holder lives). */
  timeoutMs?: number;
  /** How often to look again (default 500 ms). */
  pollMs?: number;
}

/** A break lock older than this was left by a process killed in the middle of breaking (which takes microseconds). */
const STALE_BREAKER_MS = 30_000;

export async function processStartTime(pid: number): Promise<string | undefined> {
  return startTicks(pid);
}

export async function isHolderAlive(holder: LockHolder): Promise<boolean> {
  if (holder.host !== os.hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (holder.startTime === undefined) return true;
  const now = await processStartTime(holder.pid);
  return now === undefined || now === holder.startTime;
}

async function readHolder(file: string): Promise<{ text: string; holder?: LockHolder } | undefined> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (text === undefined) return undefined;
  try {
    return { text, holder: JSON.parse(text) as LockHolder };
  } catch {
    return { text };
  }
}

/** Creates `file` holding `content` only if it does not exist; false if it does. */
async function createExclusive(file: string, content: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, content);
  try {
    await link(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Removes the lock if it still holds `staleText`; false when someone else is breaking it right now. */
async function breakStale(file: string, staleText: string): Promise<boolean> {
  const breaker = `${file}.break`;
  if (!(await createExclusive(breaker, String(process.pid)))) {
    const age = await stat(breaker).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > STALE_BREAKER_MS) await unlink(breaker).catch(() => undefined);
    return false;
  }
  try {
    const now = await readHolder(file);
    if (now?.text === staleText) await unlink(file).catch(() => undefined);
    return true;
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

/** Takes the lock if free (or held by a dead process); undefined if a live process holds it. */
export async function tryAcquireLock(file: string): Promise<HeldLock | undefined> {
  const holder: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    startTime: await processStartTime(process.pid),
    since: new Date().toISOString(),
  };
  const text = JSON.stringify(holder);
  for (;;) {
    if (await createExclusive(file, text)) {
      return {
        file,
        holder,
        release: async () => {
          // Remove only our own lock: never one a confused peer took after wrongly breaking ours.
          if ((await readHolder(file))?.text === text) await unlink(file).catch(() => undefined);
        },
      };
    }
    const current = await readHolder(file);
    if (current === undefined) continue; // released in between: try again
    const alive =
      current.holder !== undefined
        ? await isHolderAlive(current.holder)
        : await stat(file).then(
            (s) => Date.now() - s.mtimeMs < STALE_BREAKER_MS,
            () => false,
          ); // unreadable record: stale once old
    if (alive) return undefined;
    if (!(await breakStale(file, current.text))) return undefined;
  }
}

export async function acquireLock(file: string, options: AcquireOptions = {}): Promise<HeldLock> {
  const start = Date.now();
  let told = false;
  for (;;) {
    const lock = await tryAcquireLock(file);
    if (lock) return lock;
    const holder = (await readHolder(file))?.holder;
    if (!told && holder && options.onWait) {
      told = true;
      options.onWait(holder);
    }
    if (options.timeoutMs !== undefined && Date.now() - start > options.timeoutMs) {
      throw new SetupError(
        'CACHE_LOCK_TIMEOUT',
        `${file}: still held${holder ? ` by pid ${holder.pid} on ${holder.host} since ${holder.since}` : ''} after ${Math.round(options.timeoutMs / 1000)} s: wait for that build to finish, or stop it`,
      );
    }
    await sleep(options.pollMs ?? 500);
  }
}
