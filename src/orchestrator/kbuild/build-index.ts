import { mkdir, readFile, readdir, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { OrchestratorError } from '../errors.js';
import { objectForCmdFile, parseKbuildCmd, type KbuildCompileRecord } from './kbuild-cmd.js';
import { livepatchability, type Livepatchability } from './livepatchable.js';

/** A path relative to the source tree root, normalised (`include/linux/fs.h`). */
export type SourcePath = string;
/** A path relative to the build dir (`fs/proc/cmdline.o`). */
export type ObjectPath = string;

export interface IndexedObject extends KbuildCompileRecord {
  /** The compiled file relative to the source tree; null when kbuild generated it in the build dir. */
  sourceInTree: SourcePath | null;
  livepatch: Livepatchability;
}

export interface BuildIndex {
  /** Absolute build dir, as given. */
  buildDir: string;
  /**
   * The source tree path exactly as the recorded commands spell it (the build
   * dir's `source` link): recompiling substitutes this string.
   */
  recordedSourceDir: string;
  objects: Map<ObjectPath, IndexedObject>;
  /** Source tree file compiled → the objects compiled from it. */
  bySource: Map<SourcePath, ObjectPath[]>;
  /** Source tree file read during a compile (headers, #included .c files) → objects. */
  byDependency: Map<SourcePath, ObjectPath[]>;
  /** .cmd files that record no replayable compile (links, tools/ builds), for diagnostics. */
  skippedCmdFiles: number;
}

export interface BuildIndexOptions {
  /** Parallel file reads; parsing is CPU bound, so more than a few buys nothing. */
  concurrency?: number;
}

/**
 * Indexes every compile recorded in an out-of-tree (make O=) kbuild build dir.
 * Built once per build; all later questions (which objects does this header
 * reach?) are Map lookups.
 */
export async function buildIndex(buildDir: string, options: BuildIndexOptions = {}): Promise<BuildIndex> {
  const absBuild = path.resolve(buildDir);
  const recordedSourceDir = await recordedSourceTree(absBuild);
  const cmdFiles = await findCmdFiles(absBuild);
  const limit = pLimit(options.concurrency ?? 2);
  const parsed = await Promise.all(
    cmdFiles.map(({ rel, object }) =>
      limit(async () => {
        const file = path.join(absBuild, rel);
        return parseKbuildCmd(await readFile(file, 'utf8'), object, file);
      }),
    ),
  );
  const records: KbuildCompileRecord[] = [];
  for (const entry of parsed) if (entry.kind === 'compile') records.push(entry.record);
  return assembleIndex(absBuild, recordedSourceDir, records, parsed.length - records.length);
}

/** The maps of a BuildIndex from its compile records (read from .cmd files, or from a stored index). */
function assembleIndex(
  absBuild: string,
  recordedSourceDir: string,
  records: readonly KbuildCompileRecord[],
  skippedCmdFiles: number,
): BuildIndex {
  const sourcePrefix = recordedSourceDir.endsWith('/') ? recordedSourceDir : `${recordedSourceDir}/`;
  // fixdep already writes clean paths: normalise only the rare one with . or .. in it. Each
  // object lists ~500 files, mostly the same headers: answers are kept (700,000 calls, ~3,000 paths).
  const seen = new Map<string, SourcePath | null>();
  const inTree = (p: string): SourcePath | null => {
    let rel = seen.get(p);
    if (rel !== undefined) return rel;
    if (!p.startsWith(sourcePrefix)) rel = null;
    else {
      rel = p.slice(sourcePrefix.length);
      if (rel.includes('/.') || rel.startsWith('.')) rel = path.posix.normalize(rel);
    }
    seen.set(p, rel);
    return rel;
  };

  const objects = new Map<ObjectPath, IndexedObject>();
  const bySource = new Map<SourcePath, ObjectPath[]>();
  const byDependency = new Map<SourcePath, ObjectPath[]>();
  for (const r of records) {
    const sourceInTree = inTree(r.source);
    objects.set(r.object, { ...r, sourceInTree, livepatch: livepatchability(r.object, r.source, r.command) });
    if (sourceInTree !== null) push(bySource, sourceInTree, r.object);
    for (const dep of r.deps) {
      const rel = inTree(dep);
      if (rel === null || rel === sourceInTree) continue;
      // fixdep lists some headers twice (compiler_types.h, kconfig.h); objects are added one at a
      // time, so a repeat is always the list's last entry.
      const list = byDependency.get(rel);
      if (list === undefined) byDependency.set(rel, [r.object]);
      else if (list[list.length - 1] !== r.object) list.push(r.object);
    }
  }
  if (objects.size === 0) {
    throw new OrchestratorError(
      'ORCH_NOT_A_BUILD_DIR',
      `${absBuild}: no compiled objects recorded (no .*.o.cmd files with a source_ line): pass a kernel build dir after a complete make`,
    );
  }
  return { buildDir: absBuild, recordedSourceDir, objects, bySource, byDependency, skippedCmdFiles };
}

/**
 * A BuildIndex kept as JSON beside a cache entry, so a warm build reads one
 * file instead of every .cmd file (~1,000 files, 64 MB on the fixture kernel;
 * 1-2.5 s). Paths and objects are stored once and referred to by number, the
 * maps as they are, so reading it back is JSON.parse and a few thousand Map
 * entries. `stamp` (buildStamp) says which build it was made from: a stored
 * index whose stamp differs is not used.
 */
// 2: objects a module builds from another directory (kvm.ko's virt/kvm/*.o) are indexed; format 1 left them out.
const STORED_INDEX_FORMAT = 2;

interface StoredIndex {
  format: number;
  stamp: string;
  buildDir: string;
  recordedSourceDir: string;
  skippedCmdFiles: number;
  /** Dependency paths, as recorded. */
  paths: string[];
  /** [object, command, source, sourceInTree, dependency path numbers] */
  objects: Array<[string, string, string, string | null, number[]]>;
  /** [source path, object numbers] */
  bySource: Array<[string, number[]]>;
  byDependency: Array<[string, number[]]>;
}

/**
 * What changes whenever the build dir's records change: kbuild relinks
 * vmlinux.o or reruns modpost (Module.symvers, modules.order) after any
 * recompile, and .config is the build's input. Identity, size and mtime (ns)
 * of each, and the build dir's path.
 */
export async function buildStamp(buildDir: string): Promise<string> {
  const abs = path.resolve(buildDir);
  const parts = await Promise.all(
    ['vmlinux.o', 'Module.symvers', 'modules.order', '.config'].map(async (f) => {
      const st = await stat(path.join(abs, f), { bigint: true }).catch(() => undefined);
      return st ? `${f}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}` : `${f}:-`;
    }),
  );
  return [abs, ...parts].join('\n');
}

export function serializeIndex(index: BuildIndex, stamp: string): string {
  const pathNumbers = new Map<string, number>();
  const paths: string[] = [];
  const pathNumber = (p: string): number => {
    let n = pathNumbers.get(p);
    if (n === undefined) {
      n = paths.length;
      paths.push(p);
      pathNumbers.set(p, n);
    }
    return n;
  };
  const objectNumbers = new Map([...index.objects.keys()].map((o, i) => [o, i]));
  const map = (m: Map<SourcePath, ObjectPath[]>): Array<[string, number[]]> =>
    [...m].map(([k, v]) => [k, v.map((o) => objectNumbers.get(o)!)]);
  const stored: StoredIndex = {
    format: STORED_INDEX_FORMAT,
    stamp,
    buildDir: index.buildDir,
    recordedSourceDir: index.recordedSourceDir,
    skippedCmdFiles: index.skippedCmdFiles,
    objects: [...index.objects.values()].map((r) => [r.object, r.command, r.source, r.sourceInTree, r.deps.map(pathNumber)]),
    paths,
    bySource: map(index.bySource),
    byDependency: map(index.byDependency),
  };
  return JSON.stringify(stored);
}

/**
 * The index stored by serializeIndex, or undefined when the text is not one
 * or was made for another stamp. Each object's `deps` is decoded when first
 * read (only the objects a patch reaches ever are).
 */
export function deserializeIndex(text: string, stamp: string): BuildIndex | undefined {
  let s: StoredIndex;
  try {
    s = JSON.parse(text) as StoredIndex;
  } catch {
    return undefined;
  }
  if (s?.format !== STORED_INDEX_FORMAT || s.stamp !== stamp) return undefined;
  if (![s.paths, s.objects, s.bySource, s.byDependency].every(Array.isArray) || typeof s.recordedSourceDir !== 'string') return undefined;
  const { paths } = s;
  const names = s.objects.map((o) => o[0]);
  const objects = new Map<ObjectPath, IndexedObject>();
  for (const [object, command, source, sourceInTree, depNumbers] of s.objects) {
    const record = { object, command, source, sourceInTree, livepatch: livepatchability(object, source, command) } as IndexedObject;
    Object.defineProperty(record, 'deps', {
      enumerable: true,
      configurable: true,
      get(): string[] {
        const deps = depNumbers.map((n) => paths[n]!);
        Object.defineProperty(record, 'deps', { value: deps, enumerable: true, writable: true, configurable: true });
        return deps;
      },
    });
    objects.set(object, record);
  }
  const map = (entries: Array<[string, number[]]>): Map<SourcePath, ObjectPath[]> =>
    new Map(entries.map(([k, v]) => [k, v.map((n) => names[n]!)]));
  return {
    buildDir: s.buildDir,
    recordedSourceDir: s.recordedSourceDir,
    objects,
    bySource: map(s.bySource),
    byDependency: map(s.byDependency),
    skippedCmdFiles: s.skippedCmdFiles,
  };
}

/**
 * buildIndex, through a stored copy in `storeFile`: read when it was made
 * from this build (same stamp), else built from the .cmd files and stored
 * (written aside and renamed, so readers see a whole file or none).
 */
export async function storedBuildIndex(buildDir: string, storeFile: string): Promise<{ index: BuildIndex; stored: boolean }> {
  const stamp = await buildStamp(buildDir);
  const found = await readStoredIndex(buildDir, storeFile, stamp);
  if (found) return { index: found, stored: true };
  const index = await buildIndex(buildDir);
  const tmp = `${storeFile}.${process.pid}.tmp`;
  try {
    await mkdir(path.dirname(storeFile), { recursive: true });
    await writeFile(tmp, serializeIndex(index, stamp));
    await rename(tmp, storeFile);
  } catch {
    // A read-only or full cache costs the next run a re-read, nothing else.
    await rm(tmp, { force: true });
  }
  return { index, stored: false };
}

/** The index stored in `storeFile` if it was made from `buildDir` as it is now; undefined otherwise (nothing is built). */
export async function readStoredIndex(buildDir: string, storeFile: string, stamp?: string): Promise<BuildIndex | undefined> {
  const [text, now] = await Promise.all([readFile(storeFile, 'utf8').catch(() => undefined), stamp ?? buildStamp(buildDir)]);
  return text === undefined ? undefined : deserializeIndex(text, now);
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * kbuild links BUILD/source to the tree in out-of-tree builds; commands spell
 * the tree with that same string. In-tree builds (no link) mix source and
 * outputs, which recompiling into a private view cannot separate.
 */
async function recordedSourceTree(absBuild: string): Promise<string> {
  try {
    await stat(path.join(absBuild, 'Makefile'));
  } catch {
    throw new OrchestratorError(
      'ORCH_NOT_A_BUILD_DIR',
      `${absBuild}: not a kernel build dir (no Makefile): pass the directory given as O= to make`,
    );
  }
  let link: string;
  try {
    link = await readlink(path.join(absBuild, 'source'));
  } catch {
    throw new OrchestratorError(
      'ORCH_NOT_A_BUILD_DIR',
      `${absBuild}: no 'source' link, so not an out-of-tree build: build the original kernel with make O=DIR and pass DIR`,
    );
  }
  return path.resolve(absBuild, link);
}

/**
 * Walks the build dir for `.NAME.o.cmd` files. Own walk rather than
 * readdir({ recursive }): that follows symlinks, and BUILD/source links to the
 * whole source tree (78,000 files of nothing to find).
 */
async function findCmdFiles(absBuild: string): Promise<Array<{ rel: string; object: ObjectPath }>> {
  const out: Array<{ rel: string; object: ObjectPath }> = [];
  const limit = pLimit(2);
  const walk = async (relDir: string): Promise<void> => {
    const entries = await limit(() => readdir(path.join(absBuild, relDir), { withFileTypes: true }));
    const subdirs: Promise<void>[] = [];
    for (const e of entries) {
      const rel = relDir === '' ? e.name : `${relDir}/${e.name}`;
      if (e.isDirectory()) subdirs.push(walk(rel));
      else if (e.isFile() && e.name.endsWith('.o.cmd')) {
        const object = objectForCmdFile(rel);
        if (object !== null) out.push({ rel, object });
      }
    }
    await Promise.all(subdirs);
  };
  await walk('');
  return out;
}

/** True when `sourceDir` is the tree the build was made from (both resolved through symlinks). */
export async function isSameTree(index: BuildIndex, sourceDir: string): Promise<boolean> {
  const resolve = async (p: string): Promise<string> => {
    try {
      return await realpath(p);
    } catch {
      throw new OrchestratorError('ORCH_TREE_MISMATCH', `${p}: source tree not found: pass the kernel source tree the build was made from`);
    }
  };
  const [a, b] = await Promise.all([resolve(index.recordedSourceDir), resolve(sourceDir)]);
  return a === b;
}
