import { execa } from 'execa';
import { OrchestratorError } from '../errors.js';
import type { ContainerEngine } from './container.js';

/**
 * Checks, before any build starts, that a runner's tool is installed and can
 * actually sandbox: a missing bwrap or a stopped docker daemon must be one
 * clear line at the start, not a compile failure for every object.
 */

const unavailable = (message: string): OrchestratorError => new OrchestratorError('ORCH_RUNNER_UNAVAILABLE', message);

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  );
}

/** bwrap is installed and may create the namespaces (unprivileged user namespaces can be disabled by the distro). */
export async function checkBwrap(program = 'bwrap'): Promise<void> {
  const r = await execa(program, ['--ro-bind', '/', '/', '--unshare-net', '--unshare-pid', '--', 'true'], {
    reject: false,
    stdin: 'ignore',
  });
  if ((r as { code?: string }).code === 'ENOENT') {
    throw unavailable(`${program} is not installed: apt-get install bubblewrap (the bwrap runner's sandbox), or use --runner host`);
  }
  if (r.exitCode !== 0) {
    throw unavailable(
      `${program} cannot make a sandbox here (${firstLine(r.stderr) || `exit ${r.exitCode}`}): allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root, or use --runner host`,
    );
  }
}

/**
 * The engine's client is installed and reaches a working engine: `info` fails
 * when docker's daemon is not running or podman cannot set up its storage.
 */
export async function checkContainerEngine(engine: ContainerEngine, program: string = engine): Promise<void> {
  const r = await execa(program, ['info'], { reject: false, stdin: 'ignore', timeout: 30_000 });
  if ((r as { code?: string }).code === 'ENOENT') {
    throw unavailable(
      `${program} is not installed: the ${engine} runner needs ${engine} with a working engine; install it${engine === 'docker' ? ' (Debian: apt-get install docker.io)' : ''}, or use --runner bwrap`,
    );
  }
  if (r.exitCode !== 0) {
    const why = firstLine(r.stderr) || (r.timedOut ? 'no answer in 30 s' : `exit ${r.exitCode}`);
    throw unavailable(
      `${program} info failed (${why}): the ${engine} runner needs a working engine: ${engineFix(engine, why)}, or use --runner bwrap`,
    );
  }
}

/** What to do about a failing `info`. */
function engineFix(engine: ContainerEngine, why: string): string {
  if (engine === 'podman') return 'fix podman (podman info must work)';
  if (/permission denied/i.test(why)) return 'run as root or as a member of the docker group';
  // Without systemd (a container, a minimal VM) the daemon is started by hand; these options need no iptables or bridge.
  return 'start the docker daemon (systemctl start docker; without systemd, as root: dockerd --iptables=false --bridge=none &)';
}
