import path from 'node:path';
import type { Argv } from 'yargs';
import { adoptBuild } from '../orchestrator/original/original-cache.js';
import { EXIT } from './exit-codes.js';

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

export async function cacheAdoptCommand(
  a: { build: string; sourcedir: string; config?: string; cacheDir: string },
  out: (l: string) => void,
): Promise<number> {
  const build = path.resolve(a.build);
  const r = await adoptBuild({
    sourceDir: path.resolve(a.sourcedir),
    config: path.resolve(a.config ?? path.join(build, '.config')),
    cacheDir: path.resolve(a.cacheDir),
    buildDir: build,
  });
  out(`${r.buildDir} is the original build for key ${r.key}`);
  return EXIT.OK;
}
