import path from 'node:path';
import { adoptBuild } from '../../orchestrator/original/original-cache.js';
import { EXIT } from '../exit-codes.js';

// Moved to options/cache-adopt.ts, where main.ts reads them without loading this module; still exported here for older imports.
export { CACHE_ADOPT_DESCRIPTION, cacheAdoptBuilder } from '../options/cache-adopt.js';

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
