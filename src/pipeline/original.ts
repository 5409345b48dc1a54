import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type BuildIndex, buildIndex, probeStructSizes, type Runner } from '../orchestrator/index.js';
import { ensureOriginalBuild } from '../orchestrator/original-cache.js';

export interface OriginalOptions {
  sourceDir: string;
  configFile: string;
  cacheDir: string;
  runner: Runner;
  jobs: number;
  /** Scratch space for the struct-size probe. */
  workDir: string;
  onProgress?: (p: { done: number; total: number }) => void;
  onWait?: (pid: number) => void;
}

export interface Original {
  buildDir: string;
  key: string;
  hit: boolean;
  index: BuildIndex;
  /** The kernel's special-section entry sizes (sizeof of its structs), probed once per cache entry. */
  entrySizes: ReadonlyMap<string, number>;
  warnings: string[];
}

/**
 * The original kernel from the cache (built on a miss), its kbuild index and
 * the entry sizes of its special sections. The probe compiles against the
 * build tree (seconds), so its answer is kept beside the cache entry.
 */
export async function originalBuild(o: OriginalOptions): Promise<Original> {
  const built = await ensureOriginalBuild({
    sourceDir: o.sourceDir, config: o.configFile, cacheDir: o.cacheDir, runner: o.runner, jobs: o.jobs,
    ...(o.onProgress ? { onProgress: (p) => o.onProgress!({ done: p.compiled, total: p.total }) } : {}),
    ...(o.onWait ? { onWait: (h) => o.onWait!(h.pid) } : {}),
  });
  const warnings = built.configChanges.map((c) => `make olddefconfig changed ${c.option} from ${c.before} to ${c.after} for the original build: is the .config from this source tree?`);
  const [index, entrySizes] = await Promise.all([
    buildIndex(built.buildDir),
    structSizes(built.buildDir, built.key, o.cacheDir, o.workDir, o.runner),
  ]);
  return { buildDir: built.buildDir, key: built.key, hit: built.hit, index, entrySizes, warnings };
}

async function structSizes(buildDir: string, key: string, cacheDir: string, workDir: string, runner: Runner): Promise<ReadonlyMap<string, number>> {
  const file = path.join(cacheDir, 'struct-sizes', `${key}.json`);
  const cached = await readFile(file, 'utf8').then((t) => JSON.parse(t) as Record<string, number>, () => undefined);
  if (cached) return new Map(Object.entries(cached));
  const probed = await probeStructSizes(buildDir, path.join(workDir, 'struct-probe'), runner);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.${process.pid}`, JSON.stringify(Object.fromEntries(probed.entrySizes)));
  await rename(`${file}.${process.pid}`, file);
  return probed.entrySizes;
}
