import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { OrchestratorError } from '../errors.js';

/**
 * An exclusive flock(2) on LOCKFILE held while `fn` runs. Node has no flock,
 * so flock(1) takes it on a descriptor it inherits from us: the lock belongs to
 * the open file description, which this process keeps open after flock(1)
 * exits, and the kernel drops it when the descriptor closes — on return, on
 * an exception, or when this process is killed. No stale lock can survive a
 * crash, which a pid file or mkdir lock cannot promise. It is the lock
 * scripts/fetch-kernel takes with `flock 9`.
 */
export async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, onWait?: () => void): Promise<T> {
  const handle = await open(lockFile, 'a');
  try {
    let status = await flock(handle.fd, false);
    if (status === 1) {
      onWait?.();
      status = await flock(handle.fd, true);
    }
    if (status !== 0) {
      throw new OrchestratorError('ORCH_RUNNER_UNAVAILABLE', `${lockFile}: cannot lock it with flock(1) (${status}): install util-linux`);
    }
    return await fn();
  } finally {
    await handle.close();
  }
}

/** flock(1) on our descriptor (its fd 3): 0 when taken, 1 when busy and not waiting. */
function flock(fd: number, wait: boolean): Promise<number | string> {
  return new Promise((resolve) => {
    const child = spawn('flock', [...(wait ? [] : ['-n']), '-x', '3'], { stdio: ['ignore', 'ignore', 'ignore', fd] });
    child.on('error', (e) => resolve(e.message));
    child.on('exit', (code, signal) => resolve(code ?? `signal ${signal}`));
  });
}
