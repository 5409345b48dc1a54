import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { compilerVersionLine } from '../checks/compiler-check.js';
import { canonicalConfig, type KernelConfig } from '../kbuild/kconfig.js';
import type { Runner } from '../runners/runner.js';
import { SetupError } from '../setup-errors.js';
import { digestTree } from './tree-digest.js';

/**
 * What the original build is made with, and the key naming its cache entry.
 * The flags and targets are those of scripts/fetch-kernel's `fsections` build,
 * so that build can be adopted as a cache entry (tests, CI) and a build made
 * here is what the differ needs: one section per function and per data object.
 */
export const ORIGINAL_KCFLAGS: readonly string[] = ['-ffunction-sections', '-fdata-sections'];
export const ORIGINAL_TARGETS: readonly string[] = ['vmlinux', 'modules'];

/** Bump when the way an original build is made changes meaning: old entries then miss. */
export const CACHE_RECIPE = 1;

export interface CacheKeyInputs {
  recipe: number;
  /**
   * The tree's real path: kbuild writes it into every recorded command, so a
   * build of a copy elsewhere cannot stand in for it (recompiling checks this too).
   */
  sourceDir: string;
  /** digestTree(sourceDir).digest */
  tree: string;
  /** sha256 of canonicalConfig(config): comments and order do not matter. */
  config: string;
  /** First line of `CC --version`, through the runner that will compile. */
  compiler: string;
  kcflags: readonly string[];
  targets: readonly string[];
  /** Extra make variables (ARCH=, CROSS_COMPILE=, CC=…), in order. */
  makeVars: readonly string[];
}

/** 16 hex digits of a sha256 over the inputs, in a fixed field order. */
export function cacheKey(inputs: CacheKeyInputs): string {
  const canonical = JSON.stringify([
    inputs.recipe,
    inputs.sourceDir,
    inputs.tree,
    inputs.config,
    inputs.compiler,
    inputs.kcflags,
    inputs.targets,
    inputs.makeVars,
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

export function configDigest(config: KernelConfig): string {
  return createHash('sha256').update(canonicalConfig(config)).digest('hex');
}

export interface ComputeKeyOptions {
  sourceDir: string;
  config: KernelConfig;
  runner: Runner;
  /** Where `CC --version` runs (any dir the runner can see). */
  cwd: string;
  /** The compiler kbuild uses; default `gcc`. Pass `CC=…` in makeVars too if it is not gcc. */
  cc?: string;
  makeVars?: readonly string[];
}

export async function computeCacheKey(o: ComputeKeyOptions): Promise<{ key: string; inputs: CacheKeyInputs }> {
  const sourceDir = await realpath(o.sourceDir).catch(() => {
    throw new SetupError('SOURCE_NOT_USABLE', `${o.sourceDir}: no such directory: pass the kernel's source dir with -s/--sourcedir`);
  });
  const [tree, compiler] = await Promise.all([digestTree(sourceDir), compilerVersionLine({ runner: o.runner, cc: o.cc, cwd: o.cwd })]);
  const inputs: CacheKeyInputs = {
    recipe: CACHE_RECIPE,
    sourceDir,
    tree: tree.digest,
    config: configDigest(o.config),
    compiler,
    kcflags: ORIGINAL_KCFLAGS,
    targets: ORIGINAL_TARGETS,
    makeVars: o.makeVars ?? [],
  };
  return { key: cacheKey(inputs), inputs };
}
