import path from 'node:path';
import type { Argv } from 'yargs';
import { defineCommand } from './command.js';

export const CACHE_ADOPT_DESCRIPTION =
  'register an existing function-sections build as the cached original build of a source tree and config';

export function cacheAdoptBuilder(y: Argv) {
  return y
    .positional('build', {
      type: 'string',
      demandOption: true,
      describe: 'a complete make O=DIR KCFLAGS="-ffunction-sections -fdata-sections" build',
    })
    .option('sourcedir', { alias: 's', type: 'string', demandOption: true, describe: 'the source tree it was built from' })
    .option('config', { alias: 'c', type: 'string', describe: 'the .config it was built with (default: BUILD/.config)' })
    .option('cache-dir', {
      type: 'string',
      default: path.join(process.env.KLPFORGE_CACHE ?? path.join(process.env.HOME ?? '/root', '.cache/klpforge')),
      describe: 'klpforge cache',
    })
    .epilogue(
      'The build is checked (built from this tree, with this config, with function sections, complete) and stays where it is; klpforge build then starts from it instead of building the original kernel.',
    );
}

export const cacheAdoptCli = defineCommand({
  command: 'cache-adopt <build>',
  describe: CACHE_ADOPT_DESCRIPTION,
  builder: cacheAdoptBuilder,
  run: async (a, io) => {
    const { cacheAdoptCommand } = await import('../commands/cache-command.js');
    return cacheAdoptCommand({ build: a.build, sourcedir: a.sourcedir, config: a.config, cacheDir: a['cache-dir'] }, io.out);
  },
});
