import { createHash, randomBytes } from 'node:crypto';
import { appendFile, copyFile, mkdir, readFile, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { compilerVersionLine } from '../checks/compiler-check.js';
import { buildIndex, type BuildIndex, type ObjectPath, type SourcePath } from '../kbuild/build-index.js';
import { configDifferences, readKernelConfig } from '../kbuild/kconfig.js';
import { dirMembers, objectMembership, type Membership } from '../kbuild/membership.js';
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
    readKernelConfig(o.config), digestTree(sourceDir),
    compilerVersionLine({ runner: o.runner, cc: o.cc, cwd: root }), readFile(o.symvers),
  ]);
  const key = createHash('sha256').update(JSON.stringify([
    LAZY_RECIPE, sourceDir, tree.digest, await readFile(o.config, 'utf8'), compiler, o.makeVars, createHash('sha256').update(symvers).digest('hex'),
  ])).digest('hex').slice(0, 16);
  const buildDir = path.join(root, 'prepared', key);
  const base = { key, buildDir, sourceDir, makeVars: o.makeVars };
  if (await readFile(path.join(buildDir, STAMP), 'utf8').then(() => true, () => false)) return { ...base, hit: true, configChanges: [] };

  await mkdir(path.join(root, 'locks'), { recursive: true });
  const lock = await acquireLock(lockPath(root, key), { onWait: (h) => o.onWait?.(h.pid) });
  try {
    if (await readFile(path.join(buildDir, STAMP), 'utf8').then(() => true, () => false)) return { ...base, hit: true, configChanges: [] };
    await rm(buildDir, { recursive: true, force: true }); // an interrupted preparation: start over (20 s)
    await mkdir(buildDir, { recursive: true });
    await copyFile(o.config, path.join(buildDir, '.config'));
    const make = makeIn({ ...base, hit: false, configChanges: [] }, o.runner, root);
    await make(['olddefconfig'], 'configuring the lazy original tree (make olddefconfig)');
    const after = await readKernelConfig(path.join(buildDir, '.config'));
    await make([`-j${o.jobs}`, 'modules_prepare'], 'preparing the lazy original tree (make modules_prepare)');
    await copyFile(o.symvers, path.join(buildDir, 'Module.symvers'));
    await writeFileAtomic(path.join(buildDir, STAMP), `${JSON.stringify({ key, sourceDir, makeVars: o.makeVars, compiler, prepared: new Date().toISOString() })}\n`);
    return { ...base, hit: false, configChanges: configDifferences(config, after) };
  } finally {
    await lock.release();
  }
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
      throw new SetupError('CACHE_BUILD_FAILED', `${what} failed (exit ${r.exitCode}); full log: ${logFile}\n${relevantLines(log.split('\n').slice(-200).join('\n'))}`);
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
 * file in the same directory that is not compiled on its own (a local
 * header, kernel/sched/rt.c inside build_policy.c) gives the built objects
 * of that directory that #include it by name. The index's recorded
 * dependencies then decide exactly which objects are affected.
 */
export async function lazyOriginals(tree: LazyTree, touched: readonly SourcePath[], o: { runner: Runner; jobs: number; cacheDir: string; onWait?: (pid: number) => void }): Promise<LazyOriginals> {
  const globalHeaders = touched.filter((t) => t.endsWith('.h') && /^(include|arch\/[^/]+\/include)\//.test(t));
  if (globalHeaders.length > 0) {
    throw new SetupError('SOURCE_NOT_USABLE',
      `the patch changes ${globalHeaders.join(', ')}, which objects anywhere in the kernel may include; the lazy original compiles only the objects a patch names `
      + 'and cannot find every includer without building them all: build with --original full (a full build of this config: hours on 2 cores for a distribution kernel), or move the change into the .c files that need it');
  }
  const membership = { buildDir: tree.buildDir, sourceDir: tree.sourceDir, runner: o.runner, makeVars: tree.makeVars, jobs: o.jobs };
  const own = touched.filter((t) => t.endsWith('.c')).map((t) => t.replace(/\.c$/, '.o'));
  const first = await objectMembership(own, membership);
  const wanted = new Set(first.filter((m) => m.built !== false).map((m) => m.object));

  // Files not compiled on their own: their directory's built objects that include them by name.
  const strays = touched.filter((t) => !wanted.has(t.replace(/\.c$/, '.o')) && /\.(c|h)$/.test(t));
  const notBuilt: LazyOriginals['notBuilt'] = [];
  for (const m of first) if (m.built === false) notBuilt.push(m);
  if (strays.length > 0) {
    const dirs = [...new Set(strays.map((s) => path.posix.dirname(s)))];
    for (const dir of dirs) {
      const names = strays.filter((s) => path.posix.dirname(s) === dir).map((s) => path.posix.basename(s));
      for (const obj of await includersInDir(tree, dir, names, membership)) wanted.add(obj);
    }
  }

  const root = await realpath(o.cacheDir);
  let compiled = 0;
  if (wanted.size > 0) {
    const lock = await acquireLock(lockPath(root, tree.key), { onWait: (h) => o.onWait?.(h.pid) });
    try {
      const before = await Promise.all([...wanted].map((obj) => readFile(path.join(tree.buildDir, obj)).then(() => 1, () => 0)));
      compiled = wanted.size - before.reduce<number>((a, b) => a + b, 0);
      await makeIn(tree, o.runner, root)(['-k', `-j${o.jobs}`, `KCFLAGS=${ORIGINAL_KCFLAGS.join(' ')}`, ...wanted], `compiling the original ${[...wanted].join(', ')}`);
    } finally {
      await lock.release();
    }
  }
  return { index: await buildIndex(tree.buildDir), notBuilt: notBuilt.filter((n) => !wanted.has(n.object)), compiled };
}

/** Built objects of `dir` whose source #includes one of `names` ("rt.c", "internal.h"). */
async function includersInDir(tree: LazyTree, dir: string, names: readonly string[], m: Parameters<typeof objectMembership>[1]): Promise<ObjectPath[]> {
  const members = await dirMembers(dir, m);
  const objects = [...members.builtin, ...members.modular].filter((obj) => path.posix.dirname(obj) === dir);
  const include = new RegExp(`^\\s*#\\s*include\\s*["<]([^">]*/)?(${names.map((n) => n.replace(/[.+]/g, '\\$&')).join('|')})[">]`, 'm');
  const hits = await Promise.all(objects.map(async (obj) => {
    const text = await readFile(path.join(tree.sourceDir, obj.replace(/\.o$/, '.c')), 'utf8').catch(() => '');
    return include.test(text) ? obj : undefined;
  }));
  return hits.filter((h): h is ObjectPath => h !== undefined);
}
