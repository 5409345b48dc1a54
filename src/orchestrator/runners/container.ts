import path from 'node:path';
import { OrchestratorError } from '../errors.js';
import { HostRunner, type Runner, type RunOptions, type RunResult } from './runner.js';
import { planMounts, type BindPaths } from './binds.js';
import { containerSettled, nextContainerName, trackContainer } from './container-reaper.js';
import { sandboxEnv } from './sandbox-env.js';

/**
 * Runs build commands in a podman or docker container, with the sandbox the
 * bwrap runner gives: no network, the image's filesystem read-only, a private
 * /tmp, the given host paths bound at their own absolute paths. The command
 * line is a pure function so it can be tested where no engine runs.
 */

export type ContainerEngine = 'podman' | 'docker';

export interface ContainerConfig extends BindPaths {
  engine: ContainerEngine;
  /** The image to run in, with the toolchain that built the target kernel. */
  image: string;
  /** The engine's program (default: the engine's name). */
  program?: string;
  /** The caller's uid and gid, so files written to the binds are owned by the caller. */
  uid: number;
  gid: number;
}

/**
 * Who the command runs as. Docker: the caller's uid:gid, so outputs belong to
 * the caller. Rootless podman maps the caller to root unless told otherwise:
 * --userns=keep-id maps the caller's uid to itself, so bind-mounted files keep
 * their owners. As root, both run as root.
 */
export function containerUserArgs(engine: ContainerEngine, uid: number, gid: number): string[] {
  if (uid === 0) return ['--user', '0:0'];
  return engine === 'podman' ? ['--userns=keep-id', '--user', `${uid}:${gid}`] : ['--user', `${uid}:${gid}`];
}

/**
 * The whole engine command line for one command; `env` is added to the
 * image's environment. `name` names the container, so it can be removed if
 * its client dies first (container-reaper.ts).
 */
export function containerArgv(
  config: ContainerConfig,
  argv: readonly string[],
  cwd: string,
  env: Readonly<Record<string, string>>,
  name?: string,
): string[] {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('containerArgv: empty argv');
  const mounts = planMounts(config);
  for (const m of mounts) {
    // -v splits on ':'; such a path cannot be said in it.
    if (m.path.includes(':')) {
      throw new OrchestratorError(
        'ORCH_RUNNER_OPTIONS',
        `${m.path}: a path with ':' cannot be bound by ${config.engine} -v: move or symlink it to a path without one`,
      );
    }
  }
  return [
    config.program ?? config.engine,
    'run',
    '--rm',
    ...(name !== undefined ? ['--name', name] : []),
    // The image was checked (or made) before the build: never reach for a registry in the middle of one.
    '--pull',
    'never',
    '--network',
    'none',
    '--read-only',
    // The engines' default /tmp is noexec; the bwrap sandbox's and the host's are not.
    '--tmpfs',
    '/tmp:exec,mode=1777',
    // An init as PID 1 (docker's docker-init is tini): the command then dies of the signals it gets (reported 128 + N), as on the host.
    '--init',
    // As bwrap: the command needs no capability, even as root.
    '--cap-drop',
    'ALL',
    // The output reaches us through the attached client; docker need not keep a second copy of a kernel build's log.
    ...(config.engine === 'docker' ? ['--log-driver', 'none'] : []),
    // SELinux would deny the binds; relabelling them (:z) would rewrite the user's tree's labels.
    '--security-opt',
    'label=disable',
    ...containerUserArgs(config.engine, config.uid, config.gid),
    ...mounts.flatMap((m) => ['-v', `${m.path}:${m.path}:${m.writable ? 'rw' : 'ro'}`]),
    ...Object.entries(env).flatMap(([name, value]) => ['-e', `${name}=${value}`]),
    '-w',
    cwd,
    // The argv runs as given, whatever entrypoint the image declares.
    '--entrypoint',
    command,
    config.image,
    ...args,
  ];
}

export class ContainerRunner implements Runner {
  private readonly host = new HostRunner();

  constructor(readonly config: ContainerConfig) {}

  /** The command line that run() executes (for --debug output). */
  argv(argv: readonly string[], options: RunOptions): string[] {
    return containerArgv(this.config, argv, options.cwd, sandboxEnv(options.env));
  }

  /** The engine's client exits with the command's status (128 + N for a signal death). */
  async run(argv: readonly string[], options: RunOptions): Promise<RunResult> {
    const name = nextContainerName();
    const engineArgv = containerArgv(this.config, argv, options.cwd, sandboxEnv(options.env), name);
    trackContainer(name, engineArgv[0]!);
    const r = await this.host.run(engineArgv, { cwd: '/' });
    containerSettled(name, r.exitCode);
    return r;
  }

  seeing(readOnly: readonly string[]): ContainerRunner {
    return new ContainerRunner({ ...this.config, readOnly: [...this.config.readOnly, ...readOnly.map((p) => path.resolve(p))] });
  }
}

export class PodmanRunner extends ContainerRunner {
  constructor(config: Omit<ContainerConfig, 'engine'>) {
    super({ ...config, engine: 'podman' });
  }
}

export class DockerRunner extends ContainerRunner {
  constructor(config: Omit<ContainerConfig, 'engine'>) {
    super({ ...config, engine: 'docker' });
  }
}
