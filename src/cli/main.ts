import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { isKlpforgeError } from '../util/errors.js';
import { BUILD_DESCRIPTION, buildBuilder, buildCommand } from './build-command.js';
import { CACHE_ADOPT_DESCRIPTION, cacheAdoptBuilder, cacheAdoptCommand } from './cache-command.js';
import { diffCommand } from './diff-command.js';
import { elfCommand } from './elf-command.js';
import { EXIT, EXIT_CODES_HELP } from './exit-codes.js';
import { VERIFY_DESCRIPTION, verifyBuilder, verifyCommand } from './verify-command.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the CLI; returns the exit code. Errors meant for people are one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  let code: number = EXIT.OK;
  try {
    await yargs(argv)
      .scriptName('klpforge')
      .usage(
        'klpforge: build Linux livepatch modules by comparing kernel objects before and after a patch.\n\nUsage: $0 <command> [options]',
      )
      .command(
        'elf <file>',
        'show what klpforge reads in an ELF object; --write round-trips it through the model',
        (y) =>
          y
            .positional('file', { type: 'string', demandOption: true, describe: 'ELF64 object (.o, .ko, vmlinux)' })
            .option('sections', { type: 'boolean', default: false, describe: 'list sections' })
            .option('symbols', { type: 'boolean', default: false, describe: 'list symbols' })
            .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
            .option('write', { type: 'string', describe: 'write the object back out to this path' }),
        async (a) => {
          code = await elfCommand({ file: a.file, sections: a.sections, symbols: a.symbols, json: a.json, write: a.write }, out);
        },
      )
      .command(
        'diff <orig> <patched>',
        'compare two builds of one object (-ffunction-sections) function by function',
        (y) =>
          y
            .positional('orig', { type: 'string', demandOption: true, describe: 'the object built from the original source' })
            .positional('patched', { type: 'string', demandOption: true, describe: 'the same object built with the patch applied' })
            .option('output', { alias: 'o', type: 'string', describe: 'write the output object for the module generator' })
            .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (changed, new, errors, …)' })
            .option('entry-size', {
              type: 'string',
              array: true,
              default: [] as string[],
              describe: "special-section entry size, SECTION=BYTES (also kpatch's ALT_STRUCT_SIZE… variables)",
            }),
        async (a) => {
          code = await diffCommand({ orig: a.orig, patched: a.patched, output: a.output, json: a.json, entrySize: a['entry-size'] }, out);
        },
      )
      .command('build <patches..>', BUILD_DESCRIPTION, buildBuilder, async (a) => {
        code = await buildCommand(
          {
            patches: a.patches.map(String),
            sourcedir: a.sourcedir,
            config: a.config,
            vmlinux: a.vmlinux,
            jobs: a.jobs,
            target: a.target.map(String),
            name: a.name,
            output: a.output,
            debug: a.debug,
            nonReplace: a['non-replace'],
            skipCleanup: a['skip-cleanup'],
            skipCompilerCheck: a['skip-compiler-check'],
            ootModule: a['oot-module'],
            ootModuleSrc: a['oot-module-src'],
            archversion: a.archversion,
            runner: a.runner,
            image: a.image,
            rootfs: a.rootfs,
            cacheDir: a['cache-dir'],
            json: a.json,
            verify: a.verify,
            kernel: a.kernel,
            original: a.original,
            check: a.check.map(String),
            checkFile: a['check-file'].map(String),
          },
          out,
          (l) => process.stderr.write(`${l}\n`),
        );
      })
      .command('cache-adopt <build>', CACHE_ADOPT_DESCRIPTION, cacheAdoptBuilder, async (a) => {
        code = await cacheAdoptCommand({ build: a.build, sourcedir: a.sourcedir, config: a.config, cacheDir: a['cache-dir'] }, out);
      })
      .command('verify <module>', VERIFY_DESCRIPTION, verifyBuilder, async (a) => {
        code = await verifyCommand(
          { ...a, module: a.module, checkFile: a['check-file'], cacheDir: a['cache-dir'], withModule: a['with-module'] },
          out,
          (l) => process.stderr.write(`${l}\n`),
        );
      })
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
