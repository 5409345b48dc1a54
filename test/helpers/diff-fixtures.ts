import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { dir as tmpDir } from 'tmp-promise';
import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import { readElfFile } from '../../src/elf/index.js';
import { buildIndex, buildPatchedObjects, recordedCommandBeside, type BuildIndex } from '../../src/orchestrator/index.js';
import { REPO_ROOT, type FixtureKernel } from './kernel.js';

export const FIXTURE_DIR = path.join(REPO_ROOT, 'kernel-fixtures/diff');
export const KPATCH_HEADERS = path.join(REPO_ROOT, 'kernel-headers');

const execFileAsync = promisify(execFile);

/** What a fixture case expects of each object its patch rebuilds. */
export interface ObjectExpectation {
  outcome: DiffResult['outcome'];
  changed: string[];
  new: string[];
  refusals: string[];
  lineOnly?: string[];
  callbacks?: string[];
  /** Sections the output object must have (special sections of the included code). */
  outputSections?: string[];
  /** Patterns (regular expressions) every one of which must match an included data object. */
  includedData?: string[];
  /** Functions that must be included (callbacks, helpers). */
  includedFunctions?: string[];
}
/** The fixture kernel's build dir a case's objects come from (scripts/fetch-kernel). */
export type FixtureTree = 'fsections' | 'lockdep';
export interface CaseExpectation {
  description: string;
  outcome: DiffResult['outcome'];
  objects: Record<string, ObjectExpectation>;
  /**
   * Absent: the function-sections build (lockdep off). `"lockdep"`: the
   * lockdep-on tree, only prepared by fetch-kernel: the objects listed in
   * `objects` are compiled there first (make's single-object targets).
   */
  tree?: FixtureTree;
}

export interface CaseResult {
  name: string;
  objects: Record<string, ObjectExpectation>;
  outcome: DiffResult['outcome'];
  results: Record<string, DiffResult>;
  /** Time spent in the differ alone (reading the objects and diffing), ms. */
  diffMs: number;
}

export async function fixtureCases(): Promise<string[]> {
  return (await readdir(FIXTURE_DIR, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

export async function readExpectation(name: string): Promise<CaseExpectation> {
  return JSON.parse(await readFile(path.join(FIXTURE_DIR, name, 'expect.json'), 'utf8')) as CaseExpectation;
}

const OUTCOME_RANK = { unsupported: 2, changed: 1, 'no-change': 0 } as const;

/**
 * Rebuilds what one fixture patch touches; diffs with the kernel's own entry sizes when given (probeStructSizes).
 * `index` is the function-sections build's (fixtureIndex): a case on another tree indexes that tree itself.
 */
export async function runCase(
  kernel: FixtureKernel,
  name: string,
  index?: BuildIndex,
  entrySizes?: ReadonlyMap<string, number>,
): Promise<CaseResult> {
  const expectation = await readExpectation(name);
  const tree = expectation.tree ?? 'fsections';
  let buildDir = kernel.fsections;
  if (tree === 'lockdep') {
    buildDir = kernel.lockdep;
    index = undefined;
    await compileOriginals(kernel, buildDir, Object.keys(expectation.objects));
  } else if (tree !== 'fsections') {
    throw new Error(`${name}/expect.json: unknown "tree" ${JSON.stringify(tree)} (absent or "lockdep")`);
  }
  const work = await tmpDir({ unsafeCleanup: true, tmpdir: path.dirname(kernel.source) });
  try {
    const built = await buildPatchedObjects({
      sourceDir: kernel.source,
      buildDir,
      patches: [path.join(FIXTURE_DIR, name, 'fix.patch')],
      workDir: path.join(work.path, 'w'),
      jobs: 2,
      index,
      extraIncludeDirs: [KPATCH_HEADERS],
    });
    const objects: Record<string, ObjectExpectation> = {};
    const results: Record<string, DiffResult> = {};
    let outcome: DiffResult['outcome'] = 'no-change';
    let diffMs = 0;
    for (const pair of built.pairs) {
      const flags = await recordedCommandBeside(pair.original);
      const t0 = performance.now();
      const [o, p] = await Promise.all([readElfFile(pair.original), readElfFile(pair.patched)]);
      const r = diffObjects(o, p, { compilerFlags: flags, output: true, entrySizes });
      diffMs += performance.now() - t0;
      results[pair.object] = r;
      objects[pair.object] = {
        outcome: r.outcome,
        changed: r.changed.map((f) => f.name),
        new: r.new.map((f) => f.name),
        refusals: r.refusals.map((x) => x.code),
        lineOnly: r.lineOnly,
        callbacks: r.callbacks.map((c) => `${c.kind}:${c.function}`),
      };
      if (OUTCOME_RANK[r.outcome] > OUTCOME_RANK[outcome]) outcome = r.outcome;
    }
    return { name, objects, outcome, results, diffMs };
  } finally {
    await work.cleanup();
  }
}

/**
 * The original objects of a case on a prepared-only tree (the lockdep one),
 * compiled with kbuild's single-object targets and the function-sections
 * build's KCFLAGS; make skips what is up to date. flock keeps two runs (jest,
 * scripts/diff-fixtures) from compiling into the tree at once.
 */
async function compileOriginals(kernel: FixtureKernel, buildDir: string, objects: readonly string[]): Promise<void> {
  if (objects.length === 0) return;
  const args = [
    path.join(buildDir, '.klpforge-objects.lock'),
    'make',
    '-s',
    '-C',
    kernel.source,
    `O=${buildDir}`,
    'KCFLAGS=-ffunction-sections -fdata-sections',
    '-j2',
    ...objects,
  ];
  try {
    await execFileAsync('flock', args, { maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `compiling ${objects.join(' ')} in ${buildDir} failed:\n${(err.stderr ?? err.message).split('\n').slice(-30).join('\n')}`,
    );
  }
}

export async function fixtureIndex(kernel: FixtureKernel): Promise<BuildIndex> {
  return buildIndex(kernel.fsections);
}
