import { readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { OrchestratorError } from './errors.js';
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
  const sourcePrefix = recordedSourceDir.endsWith('/') ? recordedSourceDir : `${recordedSourceDir}/`;
  // fixdep already writes clean paths: normalise only the rare one with . or .. in it (700,000 calls).
  const inTree = (p: string): SourcePath | null => {
    if (!p.startsWith(sourcePrefix)) return null;
    const rel = p.slice(sourcePrefix.length);
    return rel.includes('/.') || rel.startsWith('.') ? path.posix.normalize(rel) : rel;
  };

  const cmdFiles = await findCmdFiles(absBuild);
  const limit = pLimit(options.concurrency ?? 2);
  const parsed = await Promise.all(cmdFiles.map(({ rel, object }) => limit(async () => {
    const file = path.join(absBuild, rel);
    return parseKbuildCmd(await readFile(file, 'utf8'), object, file);
  })));

  const objects = new Map<ObjectPath, IndexedObject>();
  const bySource = new Map<SourcePath, ObjectPath[]>();
  const byDependency = new Map<SourcePath, ObjectPath[]>();
  let skippedCmdFiles = 0;
  for (const entry of parsed) {
    if (entry.kind !== 'compile') { skippedCmdFiles++; continue; }
    const r = entry.record;
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
    throw new OrchestratorError('ORCH_NOT_A_BUILD_DIR',
      `${absBuild}: no compiled objects recorded (no .*.o.cmd files with a source_ line): pass a kernel build dir after a complete make`);
  }
  return { buildDir: absBuild, recordedSourceDir, objects, bySource, byDependency, skippedCmdFiles };
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
    throw new OrchestratorError('ORCH_NOT_A_BUILD_DIR',
      `${absBuild}: not a kernel build dir (no Makefile): pass the directory given as O= to make`);
  }
  let link: string;
  try {
    link = await readlink(path.join(absBuild, 'source'));
  } catch {
    throw new OrchestratorError('ORCH_NOT_A_BUILD_DIR',
      `${absBuild}: no 'source' link, so not an out-of-tree build: build the original kernel with make O=DIR and pass DIR`);
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
