import { randomBytes } from 'node:crypto';
import { appendFile, copyFile, mkdir, readFile, readlink, realpath, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import {
  cacheLayout,
  commitEntry,
  listEntries,
  lockFile,
  lookupEntry,
  looksLikeCompleteBuild,
  prepareCacheDirs,
  recordFromStamp,
  STAMP_FILE,
  sweepKey,
  sweepLeftovers,
  writeFileAtomic,
  type BuildStamp,
  type CacheEntryRecord,
  type CacheLayout,
} from './cache-entries.js';
import { computeCacheKey, ORIGINAL_KCFLAGS, ORIGINAL_TARGETS, type CacheKeyInputs } from './cache-key.js';
import { acquireLock, type LockHolder } from './cache-lock.js';
import { canonicalConfig, configDifferences, readKernelConfig, type KernelConfig } from '../kbuild/kconfig.js';
import { sourceKernelVersion } from '../checks/kernel-release.js';
import { LogProgress, type BuildProgress } from '../kbuild/make-progress.js';
import { relevantLines, shellQuote } from '../views/recompile.js';
import { HostRunner, type Runner } from '../runners/runner.js';
import { SetupError } from '../setup-errors.js';

/**
 * The original kernel build, cached: `make O=DIR KCFLAGS="-ffunction-sections
 * -fdata-sections" vmlinux modules` of the user's tree and config, once per
 * (tree, config, compiler, flags); every later patch against the same kernel
 * starts from it and compiles nothing for the original side. How entries are
 * laid out and committed atomically: cache-entries.ts.
 *
 * The runner runs make (a sandboxed runner must see the source tree and the
 * cache dir at the same paths, the cache writable).
 */
export interface CacheInputs {
  /** The kernel source tree (never written: the build is out of tree). */
  sourceDir: string;
  /** Path of the kernel .config. */
  config: string;
  cacheDir: string;
  runner?: Runner;
  /** The compiler kbuild runs (default gcc); its `--version` is part of the key. */
  cc?: string;
  /** Extra make variables (ARCH=, CROSS_COMPILE=, CC=…); part of the key. */
  makeVars?: readonly string[];
}

export interface OriginalBuildOptions extends CacheInputs {
  /** make -j (default: the number of CPUs). */
  jobs?: number;
  /** make's full output; default CACHE/logs/KEY-RAND.log. Named in any build error. */
  logFile?: string;
  /** Called as the build advances (only when this call builds). */
  onProgress?: (p: BuildProgress) => void;
  /** Called once if another process is building the same entry and this call waits for it. */
  onWait?: (holder: LockHolder) => void;
  /** Give up waiting for another process's build after this long (default: no limit). */
  lockTimeoutMs?: number;
  /** Keep a failed build dir (--debug); it is still never trusted, and swept by a later run. */
  keepFailed?: boolean;
}

export interface OriginalBuild {
  key: string;
  /** The complete out-of-tree build dir, for buildIndex / buildPatchedObjects. Never write into it. */
  buildDir: string;
  /**
   * True when this call built nothing: the entry existed, another process built it
   * while this call waited, or a run killed just before committing had completed it.
   */
  hit: boolean;
  /** The entry is a build dir registered with adoptBuild. */
  adopted: boolean;
  /** The log of the build this call ran. */
  logFile?: string;
  /**
   * Options `make olddefconfig` changed in the given .config before building
   * (only when this call built). Non-empty means the config was made for
   * another kernel version or is missing dependencies.
   */
  configChanges: Array<{ option: string; before: string; after: string }>;
}

const enabledCount = (c: KernelConfig): number => [...c.options.values()].filter((v) => v === 'y' || v === 'm').length;

interface Prepared {
  layout: CacheLayout;
  sourceDir: string;
  config: KernelConfig;
  runner: Runner;
  key: string;
  inputs: CacheKeyInputs;
}

/** Checks shared by ensureOriginalBuild and adoptBuild: readable config, usable tree and cache; then the key. */
async function prepare(o: CacheInputs): Promise<Prepared> {
  const config = await readKernelConfig(o.config);
  await sourceKernelVersion(o.sourceDir); // a kernel tree at all
  const sourceDir = await realpath(o.sourceDir);
  const inTreeBuild = ['.config', 'include/config'].map((f) => path.join(sourceDir, f));
  for (const f of inTreeBuild) {
    if (
      await stat(f).then(
        () => true,
        () => false,
      )
    ) {
      throw new SetupError(
        'SOURCE_NOT_USABLE',
        `${sourceDir} has been configured or built in place (${f} exists), and kbuild refuses out-of-tree builds of such a tree: use a clean copy of the source, or run 'make mrproper' in it (this deletes its in-tree build)`,
      );
    }
  }
  // Checked before creating anything: a cache inside the tree would write into it and change its digest.
  const root = await physicalPath(o.cacheDir);
  if (`${root}/`.startsWith(`${sourceDir}/`)) {
    throw new SetupError(
      'CACHE_UNUSABLE',
      `${root} is inside the source tree ${sourceDir}: put the cache elsewhere (--cache-dir), builds must not write into the tree`,
    );
  }
  const layout = cacheLayout(root);
  await prepareCacheDirs(layout);
  const runner = o.runner ?? new HostRunner();
  const { key, inputs } = await computeCacheKey({ sourceDir, config, runner, cwd: root, cc: o.cc, makeVars: o.makeVars });
  return { layout, sourceDir, config, runner, key, inputs };
}

/** The path with symlinks resolved, for a path that may not exist yet: its nearest existing ancestor's real path + the rest. */
async function physicalPath(p: string): Promise<string> {
  const abs = path.resolve(p);
  const rest: string[] = [];
  for (let at = abs; ; at = path.dirname(at)) {
    const real = await realpath(at).catch(() => undefined);
    if (real !== undefined) return path.join(real, ...rest.reverse());
    if (path.dirname(at) === at) return abs;
    rest.push(path.basename(at));
  }
}

/** The cached original build for these inputs, building it (once, whoever asks) if there is none. */
export async function ensureOriginalBuild(o: OriginalBuildOptions): Promise<OriginalBuild> {
  const p = await prepare(o);
  const hit = (entry: CacheEntryRecord): OriginalBuild => ({
    key: p.key,
    buildDir: entry.buildDir,
    hit: true,
    adopted: entry.adopted,
    configChanges: [],
  });

  await sweepLeftovers(p.layout); // leftovers of interrupted runs, whatever their key
  const existing = await lookupEntry(p.layout, p.key);
  if (existing) return hit(existing);

  const lock = await acquireLock(lockFile(p.layout, p.key), { onWait: o.onWait, timeoutMs: o.lockTimeoutMs });
  try {
    // Built by the process we waited for, or completed by one killed just before committing.
    await sweepKey(p.layout, p.key);
    const now = await lookupEntry(p.layout, p.key);
    if (now) return hit(now);
    return await build(p, o);
  } finally {
    await lock.release();
  }
}

async function build(p: Prepared, o: OriginalBuildOptions): Promise<OriginalBuild> {
  const id = `${p.key}-${randomBytes(4).toString('hex')}`;
  const buildDir = path.join(p.layout.builds, id);
  const logFile = path.resolve(o.logFile ?? path.join(p.layout.logs, `${id}.log`));
  await mkdir(buildDir);
  await mkdir(path.dirname(logFile), { recursive: true });
  await copyFile(o.config, path.join(buildDir, '.config'));

  const make = ['make', '-C', p.sourceDir, `O=${buildDir}`, ...(o.makeVars ?? [])];
  const run = async (args: string[]): Promise<number> => {
    const command = [...make, ...args].map(shellQuote).join(' ');
    await appendFile(logFile, `# klpforge: ${command}\n`);
    return (await p.runner.run(['sh', '-c', `exec ${command} >>${shellQuote(logFile)} 2>&1`], { cwd: buildDir })).exitCode;
  };
  const fail = async (what: string, exitCode: number): Promise<never> => {
    if (!o.keepFailed) await rm(buildDir, { recursive: true, force: true });
    throw await buildError(what, exitCode, logFile, p.layout.root);
  };

  // olddefconfig first: a .config from a slightly different tree would make syncconfig stop and ask.
  const configured = await run(['olddefconfig']);
  if (configured !== 0) await fail('configuring the original kernel (make olddefconfig)', configured);
  const after = await readKernelConfig(path.join(buildDir, '.config'));

  const progress = new LogProgress(logFile, await estimateSteps(p.layout, after), o.onProgress);
  o.onProgress?.(progress.progress);
  progress.start();
  const kcflags = `KCFLAGS=${ORIGINAL_KCFLAGS.join(' ')}`;
  const built = await run([`-j${o.jobs ?? os.availableParallelism()}`, kcflags, ...ORIGINAL_TARGETS]);
  const final = await progress.stop();
  if (built !== 0) await fail('building the original kernel', built);
  if (!(await looksLikeCompleteBuild(buildDir)))
    await fail('building the original kernel (make succeeded but vmlinux.o or Module.symvers is missing)', 0);
  o.onProgress?.({ compiled: final.compiled, total: final.compiled });

  const stamp: BuildStamp = {
    key: p.key,
    completed: new Date().toISOString(),
    objects: final.compiled,
    enabledOptions: enabledCount(after),
    inputs: p.inputs,
  };
  await writeFileAtomic(path.join(buildDir, STAMP_FILE), `${JSON.stringify(stamp, null, 1)}\n`);
  await commitEntry(p.layout, recordFromStamp(buildDir, stamp));
  return { key: p.key, buildDir, hit: false, adopted: false, logFile, configChanges: configDifferences(p.config, after) };
}

async function buildError(what: string, exitCode: number, logFile: string, cacheRoot: string): Promise<SetupError> {
  const log = await readFile(logFile, 'utf8').catch(() => '');
  const tail = log.split('\n').slice(-400).join('\n');
  const full = /No space left on device/.test(tail)
    ? ` (the disk holding ${cacheRoot} is full: free space or pass another --cache-dir)`
    : '';
  return new SetupError(
    'CACHE_BUILD_FAILED',
    `${what} failed${exitCode ? ` (exit ${exitCode})` : ''}${full}; full log: ${logFile}\n${relevantLines(tail)}`,
  );
}

/**
 * Steps (CC/AS/LD lines) to expect: a cached build's count scaled by how many
 * options each config enables, from the entry whose config is closest in
 * size; with no entry, a rough 500 + 2 per enabled option (the fixture:
 * 582 options, ~1,000 steps; a distro config: ~8,000 options, ~25,000 steps).
 */
async function estimateSteps(l: CacheLayout, config: KernelConfig): Promise<number> {
  const enabled = enabledCount(config);
  const entries = (await listEntries(l)).filter((e) => e.objects > 0 && e.enabledOptions > 0);
  if (entries.length === 0) return 500 + 2 * enabled;
  const closest = entries.reduce((a, b) => (Math.abs(b.enabledOptions - enabled) < Math.abs(a.enabledOptions - enabled) ? b : a));
  return Math.max(1, Math.round((closest.objects * enabled) / closest.enabledOptions));
}

export interface AdoptBuildOptions extends CacheInputs {
  /** A complete `make O=DIR KCFLAGS="-ffunction-sections -fdata-sections" vmlinux modules` build of sourceDir with config. */
  buildDir: string;
}

/**
 * Registers an existing build dir as the cache entry for these inputs (e.g.
 * scripts/fetch-kernel's fsections build, so tests and CI need no third
 * kernel build). The dir is checked to be what the key says: built from this
 * tree (its `source` link), with this config (same options), with the
 * original flags (init/main.o's recorded command), complete (vmlinux.o,
 * Module.symvers). It stays where it is and the cache never deletes it.
 */
export async function adoptBuild(o: AdoptBuildOptions): Promise<{ key: string; buildDir: string }> {
  const p = await prepare(o);
  const buildDir = await realpath(o.buildDir).catch(() => {
    throw new SetupError('CACHE_NOT_A_BUILD', `${o.buildDir}: no such directory`);
  });
  const refuse = (why: string): SetupError =>
    new SetupError('CACHE_NOT_A_BUILD', `${buildDir}: cannot be the original build of ${p.sourceDir} with ${o.config}: ${why}`);

  if (!(await looksLikeCompleteBuild(buildDir)))
    throw refuse('not a complete kernel build dir (needs Makefile, source, .config, vmlinux.o, Module.symvers)');
  const source = await readlink(path.join(buildDir, 'source')).then(
    (l) => realpath(path.resolve(buildDir, l)),
    () => undefined,
  );
  if (source !== p.sourceDir) throw refuse(`it was built from ${source ?? 'an unknown tree'}`);
  const built = await readKernelConfig(path.join(buildDir, '.config'));
  if (canonicalConfig(built) !== canonicalConfig(p.config)) {
    const diffs = configDifferences(p.config, built);
    throw refuse(
      `its .config differs in ${diffs.length} options (${diffs
        .slice(0, 3)
        .map((d) => `${d.option}: ${d.before} → ${d.after}`)
        .join(', ')})`,
    );
  }
  const cmd = await readFile(path.join(buildDir, 'init/.main.o.cmd'), 'utf8').catch(() => '');
  const missing = ORIGINAL_KCFLAGS.filter((f) => !new RegExp(`\\s${f}(\\s|$)`).test(cmd.split('\n', 1)[0] ?? ''));
  if (missing.length > 0)
    throw refuse(`init/main.o was not compiled with ${missing.join(' ')} (build with KCFLAGS="${ORIGINAL_KCFLAGS.join(' ')}")`);

  const objects = await countObjectCmdFiles(buildDir);
  const lock = await acquireLock(lockFile(p.layout, p.key));
  try {
    await commitEntry(p.layout, {
      format: 1,
      key: p.key,
      buildDir,
      adopted: true,
      created: new Date().toISOString(),
      objects,
      enabledOptions: enabledCount(built),
      inputs: p.inputs,
    });
    await sweepKey(p.layout, p.key); // a previous build dir of this key is now unreferenced
  } finally {
    await lock.release();
  }
  return { key: p.key, buildDir };
}

/** `.NAME.o.cmd` files: one per compiled object, about the CC/AS/LD lines of its build. */
async function countObjectCmdFiles(buildDir: string): Promise<number> {
  const r = await execa('find', ['.', '-name', '.*.o.cmd', '-printf', 'x'], { cwd: buildDir, reject: false });
  return r.stdout.length;
}

/** The entry for these inputs if cached (no build, no lock): for `--dry-run` style questions. */
export async function lookupOriginalBuild(o: CacheInputs): Promise<CacheEntryRecord | undefined> {
  const p = await prepare(o);
  return lookupEntry(p.layout, p.key);
}
