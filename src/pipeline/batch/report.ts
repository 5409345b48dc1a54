import { BatchError } from './errors.js';
import type { Shard } from './pairs.js';
import type { PairResult, PairStatus } from './results.js';

/**
 * The batch report (OUTDIR/report.json, and stdout with --json): every pair
 * of the run's shard with its result. Reports of shards merge into one.
 */
export interface BatchReport {
  readonly format: 'klpforge-batch/1';
  readonly klpforge: string;
  /** The manifest's kernels and patch sets, in its order: what a complete report covers. */
  readonly kernels: readonly string[];
  readonly patchsets: readonly string[];
  /** The shards the results come from (none: the whole manifest in one run). */
  readonly shards: readonly Shard[];
  readonly verify: boolean;
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly summary: Summary;
  readonly results: readonly PairResult[];
}

export interface Summary {
  readonly pairs: number;
  readonly verified: number;
  readonly built: number;
  readonly refused: number;
  readonly failed: number;
  /** Of the pairs above, those reused from an earlier run. */
  readonly cached: number;
  /** Pairs of the manifest that no result covers (shards not merged, or a run interrupted). */
  readonly missing: number;
}

export function summarize(results: readonly PairResult[], expected: number): Summary {
  const count = (s: PairStatus) => results.filter((r) => r.status === s).length;
  return {
    pairs: results.length,
    verified: count('verified'),
    built: count('built'),
    refused: count('refused'),
    failed: count('failed'),
    cached: results.filter((r) => r.cached === true).length,
    missing: Math.max(0, expected - results.length),
  };
}

/** Results in the manifest's order: patch set by patch set, kernel by kernel. */
export function ordered(results: readonly PairResult[], patchsets: readonly string[], kernels: readonly string[]): PairResult[] {
  const set = new Map(patchsets.map((n, i) => [n, i]));
  const kernel = new Map(kernels.map((n, i) => [n, i]));
  const rank = (r: PairResult) => (set.get(r.patchset) ?? 0) * kernels.length + (kernel.get(r.kernel) ?? 0);
  return [...results].sort((a, b) => rank(a) - rank(b));
}

/** Exit code of a batch: 0 every pair has its module; 2 some were refused (none failed); 1 any failed or is missing. */
export function batchExitCode(s: Summary): number {
  if (s.failed > 0 || s.missing > 0) return 1;
  return s.refused > 0 ? 2 : 0;
}

/**
 * Shards' reports as one. They must come from the same manifest (the same
 * kernels and patch sets) and klpforge; a pair found in two reports keeps the
 * later result (a shard run again), with a note.
 */
export function mergeReports(reports: ReadonlyArray<{ file: string; report: unknown }>, notes: (line: string) => void): BatchReport {
  const checked = reports.map(({ file, report }) => asReport(file, report));
  const first = checked[0];
  if (first === undefined)
    throw new BatchError('BATCH_INPUT', 'batch-merge: name at least one report (OUTDIR/report.json or a --json output)');
  for (const [i, r] of checked.entries()) {
    const same = JSON.stringify([r.kernels, r.patchsets]) === JSON.stringify([first.kernels, first.patchsets]);
    if (!same)
      throw new BatchError(
        'BATCH_REPORT',
        `${reports[i]!.file}: another manifest than ${reports[0]!.file} (its kernels or patch sets differ)`,
      );
  }
  const byPair = new Map<string, PairResult>();
  for (const r of checked)
    for (const result of r.results) {
      const earlier = byPair.get(result.pair);
      if (earlier !== undefined) {
        notes(`note: ${result.pair} is in more than one report: the result finished ${later(earlier, result).finishedAt} is kept`);
        byPair.set(result.pair, later(earlier, result));
      } else byPair.set(result.pair, result);
    }
  const results = ordered([...byPair.values()], first.patchsets, first.kernels);
  const startedAt = checked.map((r) => r.startedAt).sort()[0]!;
  return {
    format: 'klpforge-batch/1',
    klpforge: first.klpforge,
    kernels: first.kernels,
    patchsets: first.patchsets,
    shards: checked.flatMap((r) => r.shards),
    verify: checked.every((r) => r.verify),
    startedAt,
    // Shards run side by side: the merged run took as long as its longest shard.
    wallSeconds: Math.max(...checked.map((r) => r.wallSeconds)),
    summary: summarize(results, first.kernels.length * first.patchsets.length),
    results,
  };
}

const later = (a: PairResult, b: PairResult): PairResult => (b.finishedAt >= a.finishedAt ? b : a);

function asReport(file: string, data: unknown): BatchReport {
  const r = data as Partial<BatchReport> | null;
  if (r === null || typeof r !== 'object' || r.format !== 'klpforge-batch/1' || !Array.isArray(r.results))
    throw new BatchError('BATCH_REPORT', `${file}: not a klpforge batch report (expected OUTDIR/report.json or batch --json output)`);
  return r as BatchReport;
}
