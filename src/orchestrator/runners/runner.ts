import { constants } from 'node:os';
import { execa } from 'execa';

/**
 * Where build commands run. The host runner is the only one today; sandboxed
 * ones (bwrap, podman, docker) implement the same interface, so callers never
 * know whether gcc runs on the host or in a container.
 */
export interface RunOptions {
  /** Working directory of the command (kbuild's commands expect the build dir). */
  cwd: string;
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
}

export interface RunResult {
  /** The process's exit status; a signal death is reported as 128 + signal number, like a shell. */
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface Runner {
  /** Runs argv[0] with the remaining arguments; a non-zero exit is a result, not an exception. */
  run(argv: readonly string[], options: RunOptions): Promise<RunResult>;
  /**
   * A sandboxed runner that also sees these host paths, read-only, at their
   * own paths: the original build dir is known only once the cache is looked
   * up, after the runner is made. Absent on the host runner, which sees everything.
   */
  seeing?(readOnly: readonly string[]): Runner;
}

/** `runner`, made to see `paths` read-only if it is sandboxed. */
export function runnerSeeing(runner: Runner, paths: readonly string[]): Runner {
  return runner.seeing ? runner.seeing(paths) : runner;
}

export class HostRunner implements Runner {
  async run(argv: readonly string[], options: RunOptions): Promise<RunResult> {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('HostRunner.run: empty argv');
    const r = await execa(file, args, {
      cwd: options.cwd,
      env: options.env,
      reject: false,
      stdin: 'ignore',
      stripFinalNewline: false,
    });
    if (r.exitCode !== undefined) return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    // Spawn failures (ENOENT) and signal deaths have no exit code: keep the reason in stderr.
    const exitCode = r.signal ? 128 + constants.signals[r.signal] : 127;
    return { exitCode, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.stderr ? '\n' : ''}${r.shortMessage}` };
  }
}
