import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import { readElfFile } from '../../src/elf/index.js';
import { buildIndex, buildPatchedObjects, recordedCommandBeside, type BuildIndex } from '../../src/orchestrator/index.js';
import { REPO_ROOT, type FixtureKernel } from './kernel.js';

export const FIXTURE_DIR = path.join(REPO_ROOT, 'kernel-fixtures/diff');
export const KPATCH_HEADERS = path.join(REPO_ROOT, 'kernel-headers');

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
export interface CaseExpectation {
  description: string;
  outcome: DiffResult['outcome'];
  objects: Record<string, ObjectExpectation>;
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
  return (await readdir(FIXTURE_DIR, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

export async function readExpectation(name: string): Promise<CaseExpectation> {
  return JSON.parse(await readFile(path.join(FIXTURE_DIR, name, 'expect.json'), 'utf8')) as CaseExpectation;
}

const OUTCOME_RANK = { unsupported: 2, changed: 1, 'no-change': 0 } as const;

/** Rebuilds what one fixture patch touches; diffs with the kernel's own entry sizes when given (probeStructSizes). */
export async function runCase(kernel: FixtureKernel, name: string, index?: BuildIndex, entrySizes?: ReadonlyMap<string, number>): Promise<CaseResult> {
  const work = await tmpDir({ unsafeCleanup: true, tmpdir: path.dirname(kernel.source) });
  try {
    const built = await buildPatchedObjects({
      sourceDir: kernel.source, buildDir: kernel.fsections, patches: [path.join(FIXTURE_DIR, name, 'fix.patch')],
      workDir: path.join(work.path, 'w'), jobs: 2, index, extraIncludeDirs: [KPATCH_HEADERS],
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
        outcome: r.outcome, changed: r.changed.map((f) => f.name), new: r.new.map((f) => f.name),
        refusals: r.refusals.map((x) => x.code), lineOnly: r.lineOnly, callbacks: r.callbacks.map((c) => `${c.kind}:${c.function}`),
      };
      if (OUTCOME_RANK[r.outcome] > OUTCOME_RANK[outcome]) outcome = r.outcome;
    }
    return { name, objects, outcome, results, diffMs };
  } finally {
    await work.cleanup();
  }
}

export async function fixtureIndex(kernel: FixtureKernel): Promise<BuildIndex> {
  return buildIndex(kernel.fsections);
}
