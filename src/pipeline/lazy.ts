import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { probeStructSizes, type Runner } from '../orchestrator/index.js';
import { ensureLazyTree, type LazyTree, type LazyTreeOptions } from '../orchestrator/original/lazy-original.js';

export interface LazyOriginal {
  tree: LazyTree;
  /** The kernel's special-section entry sizes, probed once per prepared tree. */
  entrySizes: ReadonlyMap<string, number>;
  warnings: string[];
}

/**
 * The lazy original's tree (prepared once per source, config, compiler and
 * release) and the struct sizes probed against it, kept beside it as the
 * full original's are (CACHE/struct-sizes/prepared-KEY.json).
 */
export async function lazyOriginal(o: LazyTreeOptions & { workDir: string }): Promise<LazyOriginal> {
  const tree = await ensureLazyTree(o);
  const warnings = tree.configChanges.map(
    (c) =>
      `make olddefconfig changed ${c.option} from ${c.before} to ${c.after} in the running kernel's config: is the source the one it was built from?`,
  );
  return { tree, entrySizes: await structSizes(tree, o.cacheDir, o.workDir, o.runner), warnings };
}

async function structSizes(tree: LazyTree, cacheDir: string, workDir: string, runner: Runner): Promise<ReadonlyMap<string, number>> {
  const file = path.join(cacheDir, 'struct-sizes', `prepared-${tree.key}.json`);
  const cached = await readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as Record<string, number>,
    () => undefined,
  );
  if (cached) return new Map(Object.entries(cached));
  const probed = await probeStructSizes(tree.buildDir, path.join(workDir, 'struct-probe'), runner, tree.makeVars);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.${process.pid}`, JSON.stringify(Object.fromEntries(probed.entrySizes)));
  await rename(`${file}.${process.pid}`, file);
  return probed.entrySizes;
}
