import { readFileSync } from 'node:fs';
import { isKlpforgeError } from '../util/errors.js';
import { EXIT, EXIT_CODES_HELP } from './exit-codes.js';
import { loadYargs } from './load-yargs.js';
import { batchCli, batchMergeCli } from './options/batch.js';
import { buildCli } from './options/build.js';
import { cacheAdoptCli } from './options/cache-adopt.js';
import { convertCli } from './options/convert.js';
import type { CliCommand, CliIo } from './options/command.js';
import { diffCli } from './options/diff.js';
import { elfCli } from './options/elf.js';
import { verifyCli } from './options/verify.js';

// The commands, in --help's order. Only their options are loaded here: each command's handler module is imported when it
// runs (options/command.ts), so a command costs the others nothing. A new command is a file in options/ and an entry here.
const COMMANDS: readonly CliCommand[] = [elfCli, diffCli, buildCli, cacheAdoptCli, verifyCli, convertCli, batchCli, batchMergeCli];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the CLI; returns the exit code. Errors meant for people are one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const io: CliIo = { out: (line) => process.stdout.write(`${line}\n`), err: (line) => process.stderr.write(`${line}\n`) };
  let code: number = EXIT.OK;
  try {
    const yargs = await loadYargs();
    let y = yargs(argv)
      .scriptName('klpforge')
      .usage(
        'klpforge: build Linux livepatch modules by comparing kernel objects before and after a patch.\n\nUsage: $0 <command> [options]',
      );
    for (const c of COMMANDS) y = c.register(y, io, (exit) => (code = exit));
    await y
      .demandCommand(1, 'name a command')
      .strict()
      .epilogue(EXIT_CODES_HELP)
      .version(version())
      .help()
      .alias('h', 'help')
      .fail((msg, err) => {
        if (err) throw err;
        throw new UsageError(msg);
      })
      .parseAsync();
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`klpforge: ${e.message} (see klpforge --help)\n`);
      return EXIT.USAGE;
    }
    if (isKlpforgeError(e)) {
      process.stderr.write(`klpforge: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`klpforge: internal error, please report it:\n${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT.INTERNAL;
  }
  return code;
}

class UsageError extends Error {}
