import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';

/**
 * A docker daemon for the tests of `--runner docker`. Debian's docker.io is
 * not started by its package where systemd is not running (a CI container,
 * this machine), so the tests start dockerd themselves when `docker info`
 * fails, with options that need neither iptables nor a bridge (the runner
 * uses --network none), and stop it afterwards, only if they started it.
 */

export interface DockerDaemon {
  /** Whether this process started dockerd (and so stops it). */
  startedHere: boolean;
  /** Where its log goes, when started here. */
  log?: string;
  stop(): Promise<void>;
}

const SBIN_PATH = `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin`;

async function answers(): Promise<boolean> {
  const r = await execa('docker', ['info'], { reject: false, stdin: 'ignore', timeout: 20_000 });
  return r.exitCode === 0;
}

/** dockerd answering, started now if it was not: the package missing, or no root to start it, is an error saying so. */
export async function ensureDockerDaemon(logDir: string): Promise<DockerDaemon> {
  const dockerd = SBIN_PATH.split(':')
    .map((d) => path.join(d, 'dockerd'))
    .find((p) => existsSync(p));
  const client = await execa('docker', ['--version'], { reject: false, stdin: 'ignore' });
  if (dockerd === undefined || client.exitCode !== 0) {
    throw new Error(
      'docker.io is not installed (no dockerd or docker on PATH): apt-get install docker.io (scripts/test installs it) to run the docker runner tests',
    );
  }
  if (await answers()) return { startedHere: false, stop: async () => {} };
  if (process.getuid?.() !== 0) {
    throw new Error('the docker daemon is not running and only root can start it: run these tests as root, or start dockerd first');
  }
  const log = path.join(logDir, 'dockerd.log');
  const fd = openSync(log, 'a');
  const child: ChildProcess = spawn(dockerd, ['--iptables=false', '--bridge=none', '--storage-driver=overlay2'], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, PATH: SBIN_PATH },
  });
  let exited = false;
  child.on('exit', () => (exited = true));
  for (let waited = 0; !(await answers()); waited += 250) {
    if (exited || waited > 60_000) {
      if (!exited) child.kill('SIGKILL');
      throw new Error(`dockerd did not start${exited ? ` (exited ${child.exitCode})` : ' in 60 s'}: see ${log}`);
    }
    await delay(250);
  }
  return {
    startedHere: true,
    log,
    stop: async () => {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      // dockerd stops its containers and the containerd it started on SIGTERM.
      child.kill('SIGTERM');
      if ((await Promise.race([gone.then(() => true), delay(30_000).then(() => false)])) === false) {
        child.kill('SIGKILL');
        await gone;
      }
    },
  };
}
