import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileDigest, type InputsDigest } from './inputs.js';
import type { PairId } from './pairs.js';

/**
 * Each pair's result lives in OUTDIR/pairs/KERNEL/PATCHSET/result.json, next
 * to its module and build log, written only once the pair is over and always
 * whole (a temp file renamed over it). A batch killed at any point leaves
 * either a finished result or none, never half of one.
 */

export type PairStatus = 'verified' | 'built' | 'refused' | 'failed';

export interface PairResult {
  readonly pair: PairId;
  readonly kernel: string;
  readonly patchset: string;
  readonly status: PairStatus;
  /** `klpforge build`'s exit code. */
  readonly exitCode: number;
  /** The error's code (BUILD_REFUSED, BUILD_INPUT, VERIFY_FAILED, …) when there is no module. */
  readonly code?: string;
  /** The error's first line: what, where and what to do. */
  readonly message?: string;
  /** The rest of it (a patch's failed hunks, a compiler's errors). */
  readonly details?: string;
  readonly reasons: ReadonlyArray<{ code: string; object?: string; message: string }>;
  readonly stages: ReadonlyArray<{ stage: string; seconds: number; state: string }>;
  /** Relative to the output dir, so shards' reports merge and move with their files. */
  readonly module?: { path: string; sha256: string; size: number };
  readonly inputs: InputsDigest;
  /** Whether the run that made it verified modules (a verified result also serves a run without --verify). */
  readonly verify: boolean;
  readonly seconds: number;
  readonly finishedAt: string;
  /** Set in a report when this run reused the result instead of building. */
  readonly cached?: boolean;
}

export function pairDir(outDir: string, id: PairId): string {
  const [patchset, kernel] = id.split('@') as [string, string];
  return path.join(outDir, 'pairs', kernel, patchset);
}

const resultFile = (outDir: string, id: PairId) => path.join(pairDir(outDir, id), 'result.json');

export async function writeResult(outDir: string, r: PairResult): Promise<void> {
  const file = resultFile(outDir, r.pair);
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(r, null, 2)}\n`);
  await rename(tmp, file);
}

/** Before a pair is built again: a result that no longer holds must not outlive a run killed while rebuilding it. */
export async function forgetResult(outDir: string, id: PairId): Promise<void> {
  await rm(resultFile(outDir, id), { force: true });
}

/**
 * The finished result of the same inputs, if it still holds: made by a run
 * that verified when this one does, and its module still the bytes it
 * recorded (a module replaced or removed since means building again).
 */
export async function reusableResult(outDir: string, id: PairId, inputs: InputsDigest, verify: boolean): Promise<PairResult | undefined> {
  let r: PairResult;
  try {
    r = JSON.parse(await readFile(resultFile(outDir, id), 'utf8')) as PairResult;
  } catch {
    return undefined;
  }
  if (r.pair !== id || r.inputs !== inputs) return undefined;
  // A verifying run needs a verified result; a run that does not verify can't tell a verify failure from a build.
  if (verify ? !r.verify : r.verify && r.status === 'failed') return undefined;
  if (r.module) {
    const digest = await fileDigest(path.join(outDir, r.module.path)).catch(() => undefined);
    if (digest !== r.module.sha256) return undefined;
  }
  return r;
}

/** One line for a pair without a module: the error's first line and the codes of its reasons. */
export function headline(r: PairResult): string {
  const reasons = r.reasons.length > 0 ? ` (${[...new Set(r.reasons.map((x) => x.code))].join(', ')})` : '';
  return `${(r.message ?? r.code ?? '').replace(/:$/, '')}${reasons}`;
}
