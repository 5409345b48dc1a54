import type { ArgumentsCamelCase, Argv } from 'yargs';

/** Where a command prints, a line at a time. */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

/**
 * One command: its options, and how to run it. Files in options/ import only
 * types, node builtins and exit-codes.ts, because every command's options are
 * built on every run (--help lists them, strict() checks them) while `run`
 * imports the handler's module, the heavy part, only for the command given.
 */
export interface CommandSpec<O> {
  /** The yargs command with its positionals, e.g. `diff <orig> <patched>`. */
  command: string;
  describe: string;
  builder: (y: Argv) => Argv<O>;
  /** Imports the handler with `await import(...)`; returns the exit code. */
  run: (args: ArgumentsCamelCase<O>, io: CliIo) => Promise<number>;
}

/** A command with its argument types sealed in, so main.ts keeps all of them in one list. */
export interface CliCommand {
  register(y: Argv, io: CliIo, exit: (code: number) => void): Argv;
}

export function defineCommand<O>(spec: CommandSpec<O>): CliCommand {
  return {
    register: (y, io, exit) =>
      y.command(spec.command, spec.describe, spec.builder, async (a) => {
        exit(await spec.run(a, io));
      }),
  };
}
