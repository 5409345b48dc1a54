import { mkdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { kernelKey, pairInputs } from './inputs.js';
import { runJob, type JobOptions } from './job.js';
import type { Manifest } from './manifest.js';
import { allPairs, pairsOfShard, type Pair, type Shard } from './pairs.js';
import { type BatchReport, ordered, summarize } from './report.js';
import { forgetResult, type PairResult, reusableResult, writeResult } from './results.js';

export interface BatchOptions {
  readonly manifest: Manifest;
  readonly outDir: string;
  readonly cacheDir: string;
  readonly klpforge: readonly string[];
  readonly version: string;
  /** Pairs built at once (before the memory bound). */
  readonly jobs: number;
  /** Compiles per pair (default: the cores shared among the pairs running). */
  readonly buildJobs?: number;
  /** What one pair may need at its peak (a compile of the kernel's largest objects, the guest with --verify). */
  readonly memoryPerJobMb: number;
  readonly shard?: Shard;
  readonly verify: boolean;
  readonly force: boolean;
  readonly runner?: string;
  readonly image?: string;
  readonly rootfs?: string;
  readonly events?: BatchEvents;
}

export interface BatchEvents {
  /** The pairs this run covers, and how many run at once. */
  planned?(pairs: readonly Pair[], slots: number): void;
  started?(pair: Pair): void;
  finished?(result: PairResult): void;
}

/** Everything a started batch can be told from outside: stop (a signal), and what is running. */
export class BatchControl {
  private readonly running = new Map<number, Promise<void>>();
  private stopSignal: NodeJS.Signals | undefined;

  get stopped(): NodeJS.Signals | undefined {
    return this.stopSignal;
  }

  track(pid: number, done: Promise<void>): void {
    this.running.set(pid, done);
    void done.then(() => this.running.delete(pid));
    if (this.stopSignal) signal(pid, this.stopSignal);
  }

  /**
   * Starts nothing more and passes the signal on, once, to each running build
   * (in process groups of their own, a terminal's Ctrl-C reaches only the
   * batch): each stops as `klpforge build` does, removing its work dir.
   */
  async stop(sig: NodeJS.Signals): Promise<void> {
    if (this.stopSignal) return;
    this.stopSignal = sig;
    for (const pid of this.running.keys()) signal(pid, sig);
    await Promise.all(this.running.values());
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** How many pairs run at once: -j, but no more than the memory available holds. */
export function slotsFor(jobs: number, memoryPerJobMb: number, availableMb = os.freemem() / 2 ** 20): number {
  return Math.max(1, Math.min(jobs, Math.floor(availableMb / memoryPerJobMb)));
}

/**
 * Runs every pair of the shard not already finished with the same inputs in
 * the output dir, and writes OUTDIR/report.json. Kernels are interleaved in
 * the order pairs start, so different kernels' originals are prepared side by
 * side while pairs of one kernel wait on its cache lock.
 */
export async function runBatch(o: BatchOptions, control = new BatchControl()): Promise<BatchReport> {
  const startedAt = new Date();
  const pairs = pairsOfShard(allPairs(o.manifest), o.shard);
  await mkdir(o.outDir, { recursive: true });
  const kernels = new Map<string, Promise<string>>();
  const keyOf = (p: Pair) => {
    let key = kernels.get(p.kernel.name);
    if (key === undefined) kernels.set(p.kernel.name, (key = kernelKey(p.kernel)));
    return key;
  };
  const inputs = await Promise.all(pairs.map(async (p) => pairInputs(p, await keyOf(p), o.version)));
  const slots = slotsFor(o.jobs, o.memoryPerJobMb);
  o.events?.planned?.(pairs, slots);
  const job: JobOptions = {
    klpforge: o.klpforge,
    outDir: o.outDir,
    cacheDir: o.cacheDir,
    buildJobs: o.buildJobs ?? Math.max(1, Math.floor(os.cpus().length / slots)),
    verify: o.verify,
    ...(o.runner ? { runner: o.runner } : {}),
    ...(o.image ? { image: o.image } : {}),
    ...(o.rootfs ? { rootfs: o.rootfs } : {}),
    onSpawn: (pid, done) => control.track(pid, done),
  };
  const limit = pLimit(slots);
  const results = await Promise.all(
    pairs.map((p, i) =>
      limit(async (): Promise<PairResult | undefined> => {
        if (control.stopped) return undefined;
        const digest = inputs[i]!;
        const reused = o.force ? undefined : await reusableResult(o.outDir, p.id, digest, o.verify);
        if (reused) {
          const cached = { ...reused, cached: true };
          o.events?.finished?.(cached);
          return cached;
        }
        await forgetResult(o.outDir, p.id);
        o.events?.started?.(p);
        const r = await runJob(p, digest, job);
        if (r === undefined) return undefined;
        await writeResult(o.outDir, r);
        o.events?.finished?.(r);
        return r;
      }),
    ),
  );
  const done = results.filter((r): r is PairResult => r !== undefined);
  const report: BatchReport = {
    format: 'klpforge-batch/1',
    klpforge: o.version,
    kernels: o.manifest.kernels.map((k) => k.name),
    patchsets: o.manifest.patchsets.map((p) => p.name),
    shards: o.shard ? [o.shard] : [],
    verify: o.verify,
    startedAt: startedAt.toISOString(),
    wallSeconds: (Date.now() - startedAt.getTime()) / 1000,
    summary: summarize(done, pairs.length),
    results: ordered(
      done,
      o.manifest.patchsets.map((p) => p.name),
      o.manifest.kernels.map((k) => k.name),
    ),
  };
  await writeReport(path.join(o.outDir, 'report.json'), report);
  return report;
}

export async function writeReport(file: string, report: BatchReport): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(report, null, 2)}\n`);
  await rename(tmp, file);
}
