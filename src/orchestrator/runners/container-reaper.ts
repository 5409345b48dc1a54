import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { RUN_TAG_VAR } from './orphans.js';

/**
 * Containers that may outlive this process. Killing `docker run`'s client
 * does not stop its container: the daemon runs it to the end. klpforge's
 * interrupt handling (build-safety.ts) SIGKILLs its children, the clients
 * among them, which sig-proxy cannot forward. The run's tag in the container's
 * environment usually gets the container's processes killed too (they are
 * host processes in /proc), but not where /proc does not show them (rootless
 * engines, a remote daemon), nor a container the daemon was still creating.
 * So every container gets a name, and the names of those whose client did not
 * report the command's own end are removed with `rm -f` when this process
 * exits, synchronously: an 'exit' handler cannot wait for anything else.
 */

/** Containers started and not known to be over: name → engine program. */
const live = new Map<string, string>();
let hooked = false;
let sequence = 0;

/** Per process: two hosts sharing one daemon may have equal pids. */
const processNonce = randomBytes(3).toString('hex');

/**
 * A name for the next container: `klpforge-TAG-NONCE-N`, TAG being the
 * run's tag (PID-START, orphans.ts) or the pid, so `docker ps --filter
 * name=klpforge-PID-` finds a process's containers.
 */
export function nextContainerName(env: NodeJS.ProcessEnv = process.env): string {
  const tag = env[RUN_TAG_VAR] ?? String(process.pid);
  sequence += 1;
  return `klpforge-${tag}-${processNonce}-${sequence}`;
}

/** Records a container about to start; removed at exit unless `settled` is called with a normal end. */
export function trackContainer(name: string, program: string): void {
  live.set(name, program);
  if (!hooked) {
    hooked = true;
    process.once('exit', removeLiveContainers);
  }
}

/**
 * The client returned. An exit status of 128 or more may be the client's own
 * signal death with the container still running (or the command's, which
 * cannot be told apart): those stay listed and are removed at exit. Below
 * 128 the client saw the command end, and `--rm` removes the container.
 */
export function containerSettled(name: string, exitCode: number): void {
  if (exitCode < 128) live.delete(name);
}

/** The containers `removeLiveContainers` would remove now (for tests). */
export function liveContainers(): string[] {
  return [...live.keys()];
}

/** `ENGINE rm -f` of every listed container (gone ones are an error the engine prints and we ignore). */
export function removeLiveContainers(): void {
  const byProgram = new Map<string, string[]>();
  for (const [name, program] of live) byProgram.set(program, [...(byProgram.get(program) ?? []), name]);
  live.clear();
  for (const [program, names] of byProgram) {
    spawnSync(program, ['rm', '-f', ...names], { stdio: 'ignore', timeout: 20_000 });
  }
}
