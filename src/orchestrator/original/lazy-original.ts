import { createHash, randomBytes } from 'node:crypto';
import { appendFile, copyFile, mkdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { compilerVersionLine } from '../checks/compiler-check.js';
import { buildIndex, type BuildIndex, type ObjectPath, type SourcePath } from '../kbuild/build-index.js';
import { configDifferences, readKernelConfig } from '../kbuild/kconfig.js';
import { includeScan, objectsReaching } from '../kbuild/include-scan.js';
import { objectMembership, type Membership } from '../kbuild/membership.js';
import { relevantLines, shellQuote } from '../views/recompile.js';
import type { Runner } from '../runners/runner.js';
import { SetupError } from '../setup-errors.js';
import { writeFileAtomic } from './cache-entries.js';
import { ORIGINAL_KCFLAGS } from './cache-key.js';
import { acquireLock } from './cache-lock.js';
import { digestTree } from './tree-digest.js';

/**
 * The lazy original: instead of building the whole original kernel (hours
 * for a distribution config), a tree configured and prepared once
 * (`make olddefconfig modules_prepare`, ~20 s) in which only the objects a
 * patch reaches are compiled, with the original build's flags, by kbuild's
 * single-object targets (exact flags, -DMODULE, KBUILD_MODNAME, objtool).
 * Objects compiled for one patch stay for the next. The running kernel's
 * Module.symvers goes in beside them, so modules built against the tree get
 * its symbol versions.
 *
 *   CACHE/prepared/KEY/                  make O= dir; `.klpforge-prepared` once ready
 *   CACHE/locks/prepared-KEY.lock        held while preparing or compiling in it
 */
export interface LazyTreeOptions {
  sourceDir: string;
  /** The running kernel's .config. */
  config: string;
  cacheDir: string;
  runner: Runner;
  jobs: number;
  /** make variables every make in the tree gets: CC=gcc-12, KERNELRELEASE=6.1.0-57-amd64. */
  makeVars: readonly string[];
  cc?: string;
  /** The running kernel's Module.symvers. */
  symvers: string;
  onWait?: (pid: number) => void;
}

export interface LazyTree {
  key: string;
  buildDir: string;
  sourceDir: string;
  makeVars: readonly string[];
  /** True when the tree was already prepared. */
  hit: boolean;
  configChanges: Array<{ option: string; before: string; after: string }>;
}

/** Bump when the preparation steps change meaning. */
const LAZY_RECIPE = 1;
const STAMP = '.klpforge-prepared';

export async function ensureLazyTree(o: LazyTreeOptions): Promise<LazyTree> {
  const sourceDir = await realpath(o.sourceDir).catch(() => {
    throw new SetupError('SOURCE_NOT_USABLE', `${o.sourceDir}: no such directory: pass the kernel's source dir with -s/--sourcedir`);
  });
  const root = await realpath(o.cacheDir);
  const [config, tree, compiler, symvers] = await Promise.all([
    readKernelConfig(o.config),
    treeIdentity(sourceDir, root),
    compilerVersionLine({ runner: o.runner, cc: o.cc, cwd: root }),
    readFile(o.symvers),
  ]);
  const key = createHash('sha256')
    .update(
      JSON.stringify([
        LAZY_RECIPE,
        sourceDir,
        tree.digest,
        await readFile(o.config, 'utf8'),
        compiler,
        o.makeVars,
        createHash('sha256').update(symvers).digest('hex'),
      ]),
    )
    .digest('hex')
    .slice(0, 16);
  const buildDir = path.join(root, 'prepared', key);
  const base = { key, buildDir, sourceDir, makeVars: o.makeVars };
  if (
    await readFile(path.join(buildDir, STAMP), 'utf8').then(
      () => true,
      () => false,
    )
  )
    return { ...base, hit: true, configChanges: [] };

  await mkdir(path.join(root, 'locks'), { recursive: true });
  const lock = await acquireLock(lockPath(root, key), { onWait: (h) => o.onWait?.(h.pid) });
  try {
    if (
      await readFile(path.join(buildDir, STAMP), 'utf8').then(
        () => true,
        () => false,
      )
    )
      return { ...base, hit: true, configChanges: [] };
    await rm(buildDir, { recursive: true, force: true }); // an interrupted preparation: start over (20 s)
    await mkdir(buildDir, { recursive: true });
    await copyFile(o.config, path.join(buildDir, '.config'));
    const make = makeIn({ ...base, hit: false, configChanges: [] }, o.runner, root);
    await make(['olddefconfig'], 'configuring the lazy original tree (make olddefconfig)');
    const after = await readKernelConfig(path.join(buildDir, '.config'));
    await make([`-j${o.jobs}`, 'modules_prepare'], 'preparing the lazy original tree (make modules_prepare)');
    await copyFile(o.symvers, path.join(buildDir, 'Module.symvers'));
    await writeFileAtomic(
      path.join(buildDir, STAMP),
      `${JSON.stringify({ key, sourceDir, makeVars: o.makeVars, compiler, prepared: new Date().toISOString() })}\n`,
    );
    return { ...base, hit: false, configChanges: configDifferences(config, after) };
  } finally {
    await lock.release();
  }
}

/**
 * The source tree's part of the key. A tree klpforge unpacked into its own
 * cache (CACHE/src/…, stamped .klpforge-unpacked) is never edited: its stamp
 * names it, and the half second a digest of 70,000 files takes is saved on
 * every build. Any other tree is digested (size, mtime, mode of every file).
 */
async function treeIdentity(sourceDir: string, cacheRoot: string): Promise<{ digest: string }> {
  const stamp = sourceDir.startsWith(`${cacheRoot}/`)
    ? await stat(path.join(sourceDir, '.klpforge-unpacked')).catch(() => undefined)
    : undefined;
  return stamp ? { digest: `unpacked ${stamp.mtimeMs}` } : digestTree(sourceDir);
}

const lockPath = (root: string, key: string): string => path.join(root, 'locks', `prepared-${key}.lock`);

/** make -C SOURCE O=TREE VARS ARGS, logged to CACHE/logs; a failure is one error naming the log. */
function makeIn(tree: LazyTree, runner: Runner, cacheRoot: string): (args: string[], what: string) => Promise<void> {
  const logFile = path.join(cacheRoot, 'logs', `prepared-${tree.key}-${randomBytes(4).toString('hex')}.log`);
  return async (args, what) => {
    await mkdir(path.dirname(logFile), { recursive: true });
    const command = ['make', '-C', tree.sourceDir, `O=${tree.buildDir}`, ...tree.makeVars, ...args].map(shellQuote).join(' ');
    await appendFile(logFile, `# klpforge: ${command}\n`);
    const r = await runner.run(['sh', '-c', `exec ${command} >>${shellQuote(logFile)} 2>&1`], { cwd: tree.buildDir });
    if (r.exitCode !== 0) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new SetupError(
        'CACHE_BUILD_FAILED',
        `${what} failed (exit ${r.exitCode}); full log: ${logFile}\n${relevantLines(log.split('\n').slice(-200).join('\n'))}`,
      );
    }
  };
}

export interface LazyOriginals {
  index: BuildIndex;
  /** Objects the patch's files would make that this configuration does not build. */
  notBuilt: Array<Extract<Membership, { built: false }>>;
  /** How many objects were compiled now (the rest were there from earlier patches). */
  compiled: number;
}

/**
 * The original objects the touched files reach, compiled in the lazy tree
 * (what is there already is reused), and an index of the tree's compiles. A
 * touched .c file gives its own object when the configuration builds it; a
 * header, or a .c file not compiled on its own, gives the configured objects
 * whose sources #include it (kbuild/include-scan.ts). The index's recorded
 * dependencies then decide exactly which objects are affected.
 */
export async function lazyOriginals(
  tree: LazyTree,
  touched: readonly SourcePath[],
  o: { runner: Runner; jobs: number; cacheDir: string; arch?: string; onWait?: (pid: number) => void },
): Promise<LazyOriginals> {
  const membership = { buildDir: tree.buildDir, sourceDir: tree.sourceDir, runner: o.runner, makeVars: tree.makeVars, jobs: o.jobs };
  const own = touched.filter((t) => t.endsWith('.c')).map((t) => t.replace(/\.c$/, '.o'));
  const first = await objectMembership(own, membership);
  const wanted = new Set(first.filter((m) => m.built !== false).map((m) => m.object));

  // Headers, and .c files not compiled on their own (kernel/sched/rt.c inside build_policy.c): the configured
  // objects whose sources reach them through #include, from a scan of the tree made once per prepared tree.
  const strays = touched.filter((t) => /\.(h|c)$/.test(t) && !wanted.has(t.replace(/\.c$/, '.o')));
  // kbuild's own spelling of an object a Makefile builds from another directory: compiled through it, with its module's flags.
  const targets = new Map<ObjectPath, string>();
  if (strays.length > 0) {
    const scan = await includeScan({ ...membership, arch: o.arch ?? 'x86' });
    for (const [obj, target] of scan.targets) targets.set(obj, target);
    const reached = objectsReaching(scan, strays);
    const limit = maxLazyObjects();
    if (reached.length > limit) {
      const minutes = Math.ceil((reached.length * SECONDS_PER_OBJECT * 2) / o.jobs / 60);
      const full = Math.ceil((scan.objects.size * SECONDS_PER_OBJECT) / o.jobs / 60);
      throw new SetupError(
        'LAZY_TOO_MANY_OBJECTS',
        `${strays.join(', ')} ${strays.length === 1 ? 'is' : 'are'} included by ${reached.length} objects of this configuration: compiling each before and after the patch ` +
          `takes about ${minutes} min on ${o.jobs} core(s), and the lazy original stops at ${limit}; the full original (all ${scan.objects.size} objects, about ${full} min of compiles, ` +
          'cached for later patches) is the way: --original full, or move the change out of the shared header',
      );
    }
    for (const obj of reached) wanted.add(obj);
  }
  const notBuilt = first.filter((m): m is Extract<Membership, { built: false }> => m.built === false && !wanted.has(m.object));

  const root = await realpath(o.cacheDir);
  let compiled = 0;
  if (wanted.size > 0) {
    const lock = await acquireLock(lockPath(root, tree.key), { onWait: (h) => o.onWait?.(h.pid) });
    try {
      // kbuild writes an object's .cmd file after the object: with both there, the compile finished, and the
      // prepared tree's source never changes, so make has nothing to do (it would still take a second to say so).
      const present = await Promise.all(
        [...wanted].map((obj) =>
          Promise.all([stat(path.join(tree.buildDir, obj)), stat(cmdFileOf(tree.buildDir, obj))]).then(
            () => true,
            () => false,
          ),
        ),
      );
      compiled = present.filter((p) => !p).length;
      if (compiled > 0)
        await makeIn(
          tree,
          o.runner,
          root,
        )(
          ['-k', `-j${o.jobs}`, `KCFLAGS=${ORIGINAL_KCFLAGS.join(' ')}`, ...[...wanted].map((w) => targets.get(w) ?? w)],
          `compiling the original ${[...wanted].slice(0, 5).join(', ')}${wanted.size > 5 ? ` and ${wanted.size - 5} more` : ''}`,
        );
    } finally {
      await lock.release();
    }
  }
  return { index: await buildIndex(tree.buildDir), notBuilt, compiled };
}

const cmdFileOf = (buildDir: string, obj: ObjectPath): string =>
  path.join(buildDir, path.posix.dirname(obj), `.${path.posix.basename(obj)}.cmd`);

/**
 * Above this many objects reached by a header, compiling them twice costs more than the lazy original is for.
 * KLPFORGE_LAZY_MAX_OBJECTS sets another limit (a pipeline that keeps a full original per kernel may want 0).
 */
const MAX_LAZY_OBJECTS = 400;
function maxLazyObjects(): number {
  const v = Number(process.env.KLPFORGE_LAZY_MAX_OBJECTS);
  return Number.isInteger(v) && v >= 0 && process.env.KLPFORGE_LAZY_MAX_OBJECTS !== '' ? v : MAX_LAZY_OBJECTS;
}
/** A distribution config's object with debug info, on one core: 0.6 s of wall time each at -j2 (docs/benchmarks.md). */
const SECONDS_PER_OBJECT = 1.2;
