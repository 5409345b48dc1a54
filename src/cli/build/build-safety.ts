import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BuildError } from '../../pipeline/errors.js';
import { isAlive, ownTaggedProcesses, startTicks, stopOrphansIn } from '../../orchestrator/runners/orphans.js';
import { KlpforgeError } from '../../util/errors.js';

/**
 * What `klpforge build` does so that no failure, interrupt or kill leaves a
 * mess: work dirs named after their process (so a later run removes those of
 * processes that died), children stopped on Ctrl-C, a full disk named as
 * such, and logs named in an error kept after the work dir goes.
 */

/**
 * This host and PID namespace: a work dir's pid means something only where
 * it was made (a cache on a shared filesystem, or klpforge in containers).
 */
let hostTagValue: string | undefined;
async function hostTag(): Promise<string> {
  if (hostTagValue === undefined) {
    const pidns = await readlink('/proc/self/ns/pid').catch(() => '');
    hostTagValue = createHash('sha256').update(`${os.hostname()}\0${pidns}`).digest('hex').slice(0, 8);
  }
  return hostTagValue;
}

/**
 * `build-HOST-PID-START-XXXXXX`: removed by a later run once process PID,
 * started at START, is gone (a reused pid is another process: the start time
 * differs). `kept-…` (-d, --skip-cleanup) is never removed.
 */
const WORK_DIR_NAME = /^build-([0-9a-f]{8})-(\d+)-(\d+)-[A-Za-z0-9]{6}$/;

/**
 * Removes the work dirs under `parent` left by klpforge processes of this
 * host that no longer exist (kill -9, a crash, a power cut). Their orphans
 * (a make or gcc the dead process started, still writing there) are
 * stopped first: nobody will read what they write. Returns the names removed.
 */
export async function sweepStaleWorkDirs(parent: string): Promise<string[]> {
  const host = await hostTag();
  const removed: string[] = [];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const dir = path.join(parent, name);
    const m = WORK_DIR_NAME.exec(name);
    if (m !== null) {
      if (m[1] !== host) continue;
      if (await isAlive(Number(m[2]), m[3])) continue; // also right for our own pid: a dir from before it was reused has another start
    } else if (!LEGACY_WORK_DIR_NAME.test(name) || !(await olderThan(dir, LEGACY_AGE_MS))) {
      continue;
    }
    try {
      if (!(await stopOrphansIn(dir))) continue;
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
      removed.push(name);
    } catch {
      // Still in use after all, or not ours to remove: a later run tries again.
    }
  }
  return removed;
}

/**
 * `build-XXXXXX`: how klpforge named work dirs before they carried their
 * process. Nothing tells whether the run is over, so they go once a day old.
 */
const LEGACY_WORK_DIR_NAME = /^build-[A-Za-z0-9]{6}$/;
const LEGACY_AGE_MS = 24 * 3600 * 1000;

async function olderThan(dir: string, ms: number): Promise<boolean> {
  const st = await stat(dir).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs > ms;
}

/**
 * Scratch space on the source tree's filesystem (the hard-link view can't
 * cross filesystems): CACHE/work, else .klpforge-work beside the tree. Work
 * dirs of dead klpforge processes found there are removed first.
 */
export async function makeWorkDir(cacheDir: string, sourceDir: string, keep: boolean): Promise<string> {
  const src = await stat(sourceDir).catch(() => {
    throw new BuildError('BUILD_INPUT', `${sourceDir}: no such source directory (-s/--sourcedir)`, 1);
  });
  if (!src.isDirectory())
    throw new BuildError('BUILD_INPUT', `${sourceDir}: not a directory: pass the kernel source tree with -s/--sourcedir`, 1);
  const candidates = [path.join(cacheDir, 'work'), path.join(path.dirname(sourceDir), '.klpforge-work')];
  const prefix = `${keep ? 'kept' : 'build'}-${await hostTag()}-${process.pid}-${(await startTicks('self')) ?? '0'}-`;
  let full: string | undefined;
  for (const dir of candidates) {
    try {
      await mkdir(dir, { recursive: true });
      if ((await stat(dir)).dev !== src.dev) continue;
      await sweepStaleWorkDirs(dir);
      return await mkdtemp(path.join(dir, prefix));
    } catch (e) {
      if (isDiskFull(e)) full = dir;
      // not writable: try the next place
    }
  }
  if (full !== undefined) {
    throw new BuildError(
      'BUILD_DISK_FULL',
      `no space left on device: cannot make a work dir in ${full}, on the source tree's filesystem: free space on that filesystem (the work dir has to be on it)`,
      1,
    );
  }
  throw new BuildError(
    'BUILD_INPUT',
    `no writable work dir on the filesystem of ${sourceDir} (tried ${candidates.join(', ')}): pass a --cache-dir on that filesystem`,
    1,
  );
}

/** The pids of every live descendant of `root` (Linux /proc; empty elsewhere). */
async function descendants(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.length < 2 || fields[0] === 'Z') continue;
    const ppid = Number(fields[1]);
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [Number(name)]);
    else list.push(Number(name));
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * Stops every process this one started, and theirs (make, gcc, cp, patch):
 * a signal sent to klpforge alone must not leave compilers writing into a work
 * dir being removed. Repeated until none is left, as a dying make may still
 * fork; a child it forked just before dying is no longer our descendant
 * (reparented to init), so processes carrying this run's tag are stopped too.
 */
export async function killDescendants(): Promise<void> {
  for (let pass = 0; pass < 20; pass++) {
    const pids = [...new Set([...(await descendants(process.pid)), ...(await ownTaggedProcesses())])];
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await delay(25);
  }
}

/**
 * Removes `dir` and checks it stays gone: code still unwinding after an
 * interrupt (an attempt whose commands were stopped, but which may still
 * create a directory or write a file on its way out) could bring it back.
 */
export async function removeUntilGone(dir: string, quietMs = 100, passes = 20): Promise<void> {
  for (let pass = 0; pass < passes; pass++) {
    await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    await delay(quietMs);
    if (
      !(await stat(dir).then(
        () => true,
        () => false,
      ))
    )
      return;
  }
}

/**
 * Ctrl-C, SIGTERM, SIGHUP: stop the children, run `stop` (remove the work
 * dir, say so), exit 128+signal. A second signal exits at once; the work dir
 * it may leave is removed by a later run (sweepStaleWorkDirs).
 */
export class SignalGuard {
  private stopping: Promise<never> | undefined;
  private signalName: NodeJS.Signals | undefined;
  private readonly signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

  constructor(private readonly stop: (signal: NodeJS.Signals, exitCode: number) => Promise<void>) {}

  private readonly handler = (signal: NodeJS.Signals): void => {
    const code = 128 + (os.constants.signals[signal] ?? 2);
    if (this.stopping !== undefined) process.exit(code);
    this.signalName = signal;
    process.exitCode = code;
    this.stopping = (async () => {
      await killDescendants().catch(() => {});
      await this.stop(signal, code).catch(() => {});
      process.exit(code);
    })();
  };

  install(): void {
    for (const s of this.signals) process.on(s, this.handler);
  }

  uninstall(): void {
    for (const s of this.signals) process.off(s, this.handler);
  }

  get interrupted(): NodeJS.Signals | undefined {
    return this.signalName;
  }

  /** Never returns: the process exits when the stop work is done. */
  async wait(): Promise<never> {
    return this.stopping ?? new Promise<never>(() => {});
  }
}

export function isDiskFull(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  return e instanceof Error && /No space left on device|Disk quota exceeded/.test(e.message);
}

export interface WrittenPlace {
  dir: string;
  /** "the work dir", "the output dir (-o)"… */
  what: string;
  /** What to do when it is full. */
  remedy: string;
}

/** Bytes this process may still write on the filesystem holding `dir` (its nearest existing ancestor). */
async function freeBytes(dir: string): Promise<{ free: number; dev: number } | undefined> {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    try {
      const [s, st] = await Promise.all([statfs(at), stat(at)]);
      const blocks = process.getuid?.() === 0 ? s.bfree : s.bavail;
      return { free: Number(blocks) * Number(s.bsize), dev: st.dev };
    } catch {
      if (path.dirname(at) === at) return undefined;
    }
  }
}

/**
 * Failures of steps that write files, whose tools may not say "No space left
 * on device" when that is the cause (objtool: "cannot write data"). A bad
 * .config or a refusal is never put down to a nearly full disk.
 */
const WRITING_STEPS = new Set([
  'ORCH_COMPILE_FAILED',
  'ORCH_VIEW_FAILED',
  'ORCH_PROBE_FAILED',
  'MODULE_BUILD_FAILED',
  'CACHE_BUILD_FAILED',
  'COMPILER_UNUSABLE',
]);
function writes(e: unknown): boolean {
  return !(e instanceof KlpforgeError) || WRITING_STEPS.has(e.code);
}

/** Less than this free, a failure of a writing step is put down to the full disk (a module build needs a few MB). */
const LOW_SPACE = 4 << 20;

function kib(bytes: number): string {
  return bytes >= 10 << 20 ? `${Math.round(bytes / (1 << 20))} MiB` : `${Math.floor(bytes / 1024)} KiB`;
}

/**
 * A failure caused by a full filesystem, said as such: which of the places
 * klpforge writes is full, how much is free, and what to do. The original
 * error follows as detail (a compiler's "No space left on device", objtool's
 * "cannot write data"), since tools rarely say the disk is full in a way a
 * reader recognises. Undefined when the failure is not about space.
 */
export async function diskFullError(
  e: unknown,
  places: readonly WrittenPlace[],
  stage: string | undefined,
): Promise<KlpforgeError | undefined> {
  if (e instanceof BuildError && e.code === 'BUILD_DISK_FULL') return undefined;
  const says = isDiskFull(e);
  const seen = new Set<number>();
  const measured: Array<WrittenPlace & { free: number }> = [];
  for (const p of places) {
    const f = await freeBytes(p.dir);
    if (f === undefined || seen.has(f.dev)) continue;
    seen.add(f.dev);
    measured.push({ ...p, free: f.free });
  }
  const low = measured.filter((p) => p.free < LOW_SPACE).sort((a, b) => a.free - b.free);
  if (!says && (low.length === 0 || !writes(e))) return undefined;
  const detail =
    e instanceof Error
      ? e.message
          .split('\n')
          .filter((l) => l.trim() !== '')
          .slice(0, 6)
          .map((l) => `  ${l}`)
          .join('\n')
      : `  ${String(e)}`;
  const during = stage ? ` (${stage} stage)` : '';
  const full = low[0];
  const headline =
    full !== undefined
      ? `${says || full.free === 0 ? 'no space left on device' : 'a step failed with the disk nearly full'}${during}: ${full.what} ${full.dir} is on a filesystem with ${kib(full.free)} free: ${full.remedy}`
      : `no space left on device${during}: free space on the filesystems of ${measured.map((p) => `${p.what} ${p.dir}`).join(', ')}`;
  return new BuildError('BUILD_DISK_FULL', `${headline}\n${detail}`, 1);
}

/**
 * A log file inside the work dir named in an error would be deleted with the
 * work dir: copy it to CACHE/logs and name the copy instead.
 */
export async function keepNamedLogs(e: unknown, workDir: string, logsDir: string): Promise<void> {
  if (!(e instanceof Error)) return;
  const escaped = workDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const named = [...new Set([...e.message.matchAll(new RegExp(`${escaped}/[^\\s)'"]+\\.log`, 'g'))].map((m) => m[0]))];
  for (const file of named) {
    const kept = path.join(logsDir, `${path.basename(workDir)}-${path.relative(workDir, file).replaceAll('/', '-')}`);
    try {
      await mkdir(logsDir, { recursive: true });
      await copyFile(file, kept);
    } catch {
      continue; // the message keeps naming the original (and -d keeps it)
    }
    const swap = (s: string): string => s.replaceAll(file, kept);
    e.message = swap(e.message);
    for (const list of [
      (e as { problems?: Array<{ message: string }> }).problems,
      (e as { reasons?: Array<{ message: string }> }).reasons,
    ]) {
      for (const item of list ?? []) {
        try {
          item.message = swap(item.message);
        } catch {
          // frozen: the top-level message is what people read
        }
      }
    }
  }
}

/**
 * A build started by `klpforge batch` (its pid in KLPFORGE_BATCH_PARENT)
 * stops as on SIGTERM once the batch is gone: a batch killed with -9 (a CI
 * job cancelled hard) must not leave its builds running unseen, writing into
 * an output dir the next run is about to use. Polled: Linux tells a child of
 * its parent's death only through prctl, which Node does not offer.
 */
export function stopWithParent(parent: string | undefined): () => void {
  const pid = Number(parent);
  if (!Number.isInteger(pid) || pid <= 1 || process.ppid !== pid) return () => {};
  const timer = setInterval(() => {
    if (process.ppid === pid) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, 500);
  timer.unref();
  return () => clearInterval(timer);
}
