import { readdir, readFile, readlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Processes left running by a klpforge run that was killed (kill -9, a CI
 * timeout, an OOM kill): its make and compilers go on writing into a work dir
 * or a cache build dir that a later run will remove. Each run marks what it
 * starts with RUN_TAG_VAR (inherited by every descendant: make's sub-makes,
 * the shells of its recipes, gcc), so a later run can tell them apart from
 * anything else working in that dir (a user's shell cd'ed into it, a process
 * of a live run) and stop exactly those. Linux /proc; nothing found elsewhere.
 */
export const RUN_TAG_VAR = 'KLPFORGE_RUN';

/** When a process started, in clock ticks since boot (/proc/PID/stat field 22); undefined without /proc. */
export async function startTicks(pid: number | 'self'): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** Whether process `pid` exists and, when `start` is known, is the one that started then (pids are reused). */
export async function isAlive(pid: number, start?: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (start === undefined || start === '0') return true;
  const now = await startTicks(pid);
  return now === undefined || now === start;
}

/** Marks every process this one starts from now on as this run's: `PID-START`. */
export async function tagChildProcesses(): Promise<void> {
  process.env[RUN_TAG_VAR] = `${process.pid}-${(await startTicks('self')) ?? '0'}`;
}

/** Every live process (but this one) carrying this process's own run tag: what it started, and theirs, even once reparented. */
export async function ownTaggedProcesses(): Promise<number[]> {
  const mine = process.env[RUN_TAG_VAR];
  if (mine === undefined || !mine.startsWith(`${process.pid}-`)) return [];
  const found: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    if ((await runTagOf(name)) === mine) found.push(Number(name));
  }
  return found;
}

/** The run tag in a process's environment, if any. */
async function runTagOf(pid: string): Promise<string | undefined> {
  const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
  const entry = environ.split('\0').find((e) => e.startsWith(`${RUN_TAG_VAR}=`));
  const tag = entry?.slice(RUN_TAG_VAR.length + 1);
  return tag !== undefined && /^\d+-\d+$/.test(tag) ? tag : undefined;
}

/** Processes started by a klpforge run that is gone, working in `dir` (their cwd in it, or a path in it on their command line). */
export async function orphansIn(dir: string): Promise<number[]> {
  const inside = (p: string) => p === dir || p.startsWith(`${dir}/`);
  const deadRuns = new Map<string, boolean>();
  const found: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const tag = await runTagOf(name);
    if (tag === undefined) continue;
    const [cmd, cwd] = await Promise.all([
      readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => ''),
      readlink(`/proc/${name}/cwd`).catch(() => ''),
    ]);
    if (!inside(cwd) && !cmd.split('\0').some((arg) => arg.includes(`${dir}/`) || arg.endsWith(dir))) continue;
    let dead = deadRuns.get(tag);
    if (dead === undefined) {
      const [pid, start] = tag.split('-');
      dead = !(await isAlive(Number(pid), start));
      deadRuns.set(tag, dead);
    }
    if (dead) found.push(Number(name));
  }
  return found;
}

/**
 * Stops the orphans working in `dir` before it is removed: nobody will read
 * what they write, and removing the dir under them races with them. Repeated,
 * as a make killed mid-fork may have started one more. Returns whether none is left.
 */
export async function stopOrphansIn(dir: string): Promise<boolean> {
  for (let pass = 0; pass < 10; pass++) {
    const orphans = await orphansIn(dir);
    if (orphans.length === 0) return true;
    for (const pid of orphans) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already, or not ours
      }
    }
    await delay(25);
  }
  return (await orphansIn(dir)).length === 0;
}
