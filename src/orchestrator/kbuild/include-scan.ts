import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Runner } from '../runners/runner.js';
import type { ObjectPath, SourcePath } from './build-index.js';
import { dirMembers } from './membership.js';

/**
 * Which configured objects may include a file, without a build: the lazy
 * original has no fixdep records for objects it never compiled, so a header
 * patch is answered from the sources. Every object the configuration builds
 * (kbuild's own lists, walked from the top-level directories) and the
 * `#include` lines of their sources and of every header those reach form a
 * graph; the objects whose source reaches a touched file are the candidates.
 * It is a superset (conditional includes count, and an include is resolved
 * against every directory kbuild's standard -I list could find it in), so the
 * candidates are compiled and their recorded dependencies then decide.
 * Made once per prepared tree (the source behind it never changes) and kept
 * in it as JSON.
 */
export interface IncludeScan {
  /** Configured objects → their source. */
  objects: Map<ObjectPath, SourcePath>;
  /** The make target of objects a Makefile builds from another directory (membership.ts `spelled`). */
  targets: Map<ObjectPath, string>;
  /** File → the files whose #include lines resolve to it (sources and headers, tree-relative; build-dir files as `@build/…`). */
  includers: Map<string, string[]>;
}

export interface IncludeScanOptions {
  buildDir: string;
  sourceDir: string;
  runner: Runner;
  makeVars?: readonly string[];
  jobs?: number;
  /** SRCARCH: `x86`. */
  arch: string;
}

/** Where kbuild looks for the top-level directories' objects (the top Makefile's core-y, drivers-y, libs-y …). */
const TOP_DIRS = [
  'init',
  'usr',
  'kernel',
  'certs',
  'mm',
  'fs',
  'ipc',
  'security',
  'crypto',
  'block',
  'io_uring',
  'drivers',
  'sound',
  'net',
  'lib',
  'virt',
  'samples',
];
const SCAN_FORMAT = 2;
const INCLUDE = /^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]/gm;

export async function includeScan(o: IncludeScanOptions): Promise<IncludeScan> {
  const file = path.join(o.buildDir, '.klpforge-include-scan.json');
  const stored = await readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as { format: number; objects: [string, string][]; targets: [string, string][]; includers: [string, string[]][] },
    () => undefined,
  );
  if (stored?.format === SCAN_FORMAT)
    return { objects: new Map(stored.objects), targets: new Map(stored.targets), includers: new Map(stored.includers) };
  const { objects, targets } = await configuredObjects(o);
  const includers = await includeGraph([...new Set(objects.values())], o);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(
    `${file}.${process.pid}`,
    JSON.stringify({ format: SCAN_FORMAT, objects: [...objects], targets: [...targets], includers: [...includers] }),
  );
  await rename(`${file}.${process.pid}`, file);
  return { objects, targets, includers };
}

/** Every object the configuration builds, from each directory's Makefile (membership.ts), with the .c or .S it is made from. */
export async function configuredObjects(
  o: Omit<IncludeScanOptions, 'jobs'> & { jobs?: number },
): Promise<{ objects: Map<ObjectPath, SourcePath>; targets: Map<ObjectPath, string> }> {
  const limit = pLimit(Math.max(2, o.jobs ?? 2) * 2);
  const out = new Map<ObjectPath, SourcePath>();
  const targets = new Map<ObjectPath, string>();
  const seen = new Set<string>();
  const visit = async (dir: string): Promise<void> => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const m = await limit(() => dirMembers(dir, o));
    for (const obj of [...m.builtin, ...m.modular]) out.set(obj, obj.replace(/\.o$/, '.c'));
    for (const [obj, target] of m.spelled) targets.set(obj, target);
    await Promise.all([...m.subdirs].map(visit));
  };
  await Promise.all([...TOP_DIRS, `arch/${o.arch}`].map(visit));
  return { objects: out, targets };
}

async function includeGraph(sources: readonly SourcePath[], o: IncludeScanOptions): Promise<Map<string, string[]>> {
  const roots = [
    { prefix: '', dir: o.sourceDir, subdirs: [`arch/${o.arch}/include`, 'include', `arch/${o.arch}/include/uapi`, 'include/uapi'] },
    {
      prefix: '@build/',
      dir: o.buildDir,
      subdirs: [`arch/${o.arch}/include/generated`, 'include/generated', `arch/${o.arch}/include/generated/uapi`, 'include/generated/uapi'],
    },
  ];
  const read = (f: string): Promise<string | undefined> =>
    readFile(f.startsWith('@build/') ? path.join(o.buildDir, f.slice(7)) : path.join(o.sourceDir, f), 'utf8').catch(() => undefined);
  const exists = new Map<string, Promise<boolean>>();
  const isFile = (f: string): Promise<boolean> => {
    let e = exists.get(f);
    if (!e) {
      e = read(f).then((t) => t !== undefined);
      exists.set(f, e);
    }
    return e;
  };
  const resolve = async (from: string, quote: string, name: string): Promise<string[]> => {
    const candidates: string[] = [];
    if (quote === '"') {
      const base = from.startsWith('@build/') ? `@build/${path.posix.dirname(from.slice(7))}` : path.posix.dirname(from);
      candidates.push(
        base.startsWith('@build/')
          ? `@build/${path.posix.normalize(path.posix.join(base.slice(7), name))}`
          : path.posix.normalize(path.posix.join(base, name)),
      );
    }
    for (const r of roots) for (const d of r.subdirs) candidates.push(`${r.prefix}${path.posix.normalize(path.posix.join(d, name))}`);
    const hits = await Promise.all(
      candidates.filter((c) => !c.includes('../') && !c.startsWith('..')).map(async (c) => ((await isFile(c)) ? c : undefined)),
    );
    return hits.filter((h): h is string => h !== undefined);
  };

  const includers = new Map<string, string[]>();
  const done = new Set<string>();
  const limit = pLimit(32);
  const scan = async (file: string): Promise<void> => {
    if (done.has(file)) return;
    done.add(file);
    const text = await limit(() => read(file));
    if (text === undefined) return;
    const next: Promise<void>[] = [];
    for (const m of text.matchAll(INCLUDE)) {
      next.push(
        resolve(file, m[1]!, m[2]!.trim()).then(async (targets) => {
          for (const t of targets) {
            const list = includers.get(t);
            if (list) {
              if (!list.includes(file)) list.push(file);
            } else includers.set(t, [file]);
            await scan(t);
          }
        }),
      );
    }
    await Promise.all(next);
  };
  await Promise.all(sources.map(scan));
  return includers;
}

/** Configured objects whose source reaches any of `files` through #include (a file that is an object's own source counts too). */
export function objectsReaching(scan: IncludeScan, files: readonly SourcePath[]): ObjectPath[] {
  const reached = new Set<string>(files);
  const queue = [...files];
  while (queue.length > 0) {
    for (const by of scan.includers.get(queue.pop()!) ?? []) {
      if (!reached.has(by)) {
        reached.add(by);
        queue.push(by);
      }
    }
  }
  const out: ObjectPath[] = [];
  for (const [obj, src] of scan.objects) if (reached.has(src)) out.push(obj);
  return out.sort();
}
