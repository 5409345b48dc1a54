import { mkdir, readFile, realpath, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readStoredIndex, storedBuildIndex } from '../orchestrator/kbuild/build-index.js';
import { cacheLayout, listEntries } from '../orchestrator/original/cache-entries.js';
import { configDigest } from '../orchestrator/original/cache-key.js';
import { type BuildIndex, probeStructSizes, readKernelConfig, type Runner, runnerSeeing } from '../orchestrator/index.js';
import { ensureOriginalBuild } from '../orchestrator/original/original-cache.js';

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
  /** make variables every kbuild run needs (a cross build's ARCH= and CROSS_COMPILE=, its livepatch flags); part of the key. */
  makeVars?: readonly string[];
  /** The compiler kbuild runs, when not gcc (its --version is part of the key). */
  cc?: string;
}

/** A cache entry's build dir with what the pipeline needs beside it. */
export interface OriginalChoice {
  buildDir: string;
  key: string;
  index: BuildIndex;
  /** The kernel's special-section entry sizes (sizeof of its structs), probed once per cache entry. */
  entrySizes: ReadonlyMap<string, number>;
}

export interface Original extends OriginalChoice {
  hit: boolean;
  warnings: string[];
}

/**
 * The original kernel from the cache (built on a miss), its kbuild index and
 * the entry sizes of its special sections. Both are kept beside the cache
 * entry (CACHE/build-index/KEY.json, CACHE/struct-sizes/KEY.json): reading
 * every .cmd file takes 1-2.5 s, the probe compiles against the build tree.
 * `likely` (likelyOriginal, started earlier) saves reading them again when
 * the key turns out to be its entry's.
 */
export async function originalBuild(
  o: OriginalOptions,
  likely: Promise<OriginalChoice | undefined> = likelyOriginal(o),
): Promise<Original> {
  const built = await ensureOriginalBuild({
    sourceDir: o.sourceDir,
    config: o.configFile,
    cacheDir: o.cacheDir,
    runner: o.runner,
    jobs: o.jobs,
    ...(o.makeVars && o.makeVars.length > 0 ? { makeVars: o.makeVars } : {}),
    ...(o.cc ? { cc: o.cc } : {}),
    ...(o.onProgress ? { onProgress: (p) => o.onProgress!({ done: p.compiled, total: p.total }) } : {}),
    ...(o.onWait ? { onWait: (h) => o.onWait!(h.pid) } : {}),
  });
  const warnings = built.configChanges.map(
    (c) =>
      `make olddefconfig changed ${c.option} from ${c.before} to ${c.after} for the original build: is the .config from this source tree?`,
  );
  const early = await likely;
  if (early !== undefined && sameOriginal(early, built)) return { ...early, hit: built.hit, warnings };
  const [index, entrySizes] = await Promise.all([
    storedBuildIndex(built.buildDir, indexFile(o.cacheDir, built.key)).then((s) => s.index),
    structSizes(built.buildDir, built.key, o.cacheDir, o.workDir, runnerSeeing(o.runner, [built.buildDir]), o.makeVars ?? []),
  ]);
  return { buildDir: built.buildDir, key: built.key, hit: built.hit, index, entrySizes, warnings };
}

export const sameOriginal = (a: { key: string; buildDir: string }, b: { key: string; buildDir: string }): boolean =>
  a.key === b.key && a.buildDir === b.buildDir;

const indexFile = (cacheDir: string, key: string): string => path.join(cacheDir, 'build-index', `${key}.json`);
const structSizesFile = (cacheDir: string, key: string): string => path.join(cacheDir, 'struct-sizes', `${key}.json`);

/**
 * The entry this run will most likely use, known before the cache key is (a
 * digest of the whole tree, about a second): the newest entry made from this
 * tree and config, when its stored index (checked against its build dir) and
 * struct sizes are at hand. Only a guess, to be confirmed by the key; any
 * problem means no guess, never an error.
 */
export async function likelyOriginal(o: { sourceDir: string; configFile: string; cacheDir: string }): Promise<OriginalChoice | undefined> {
  try {
    const [sourceDir, config] = await Promise.all([realpath(o.sourceDir), readKernelConfig(o.configFile)]);
    const digest = configDigest(config);
    const newest = (await listEntries(cacheLayout(await realpath(o.cacheDir))))
      .filter((e) => e.inputs.sourceDir === sourceDir && e.inputs.config === digest)
      .sort((a, b) => b.created.localeCompare(a.created))[0];
    if (newest === undefined) return undefined;
    const [index, sizes] = await Promise.all([
      readStoredIndex(newest.buildDir, indexFile(o.cacheDir, newest.key)),
      readFile(structSizesFile(o.cacheDir, newest.key), 'utf8').then((t) => JSON.parse(t) as Record<string, number>),
    ]);
    return index ? { key: newest.key, buildDir: newest.buildDir, index, entrySizes: new Map(Object.entries(sizes)) } : undefined;
  } catch {
    return undefined;
  }
}

async function structSizes(
  buildDir: string,
  key: string,
  cacheDir: string,
  workDir: string,
  runner: Runner,
  makeVars: readonly string[],
): Promise<ReadonlyMap<string, number>> {
  const file = structSizesFile(cacheDir, key);
  const cached = await readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as Record<string, number>,
    () => undefined,
  );
  if (cached) return new Map(Object.entries(cached));
  const probed = await probeStructSizes(buildDir, path.join(workDir, 'struct-probe'), runner, makeVars);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.${process.pid}`, JSON.stringify(Object.fromEntries(probed.entrySizes)));
  await rename(`${file}.${process.pid}`, file);
  return probed.entrySizes;
}
