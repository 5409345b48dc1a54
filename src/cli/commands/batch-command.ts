import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchError } from '../../pipeline/batch/errors.js';
import { junitXml } from '../../pipeline/batch/junit.js';
import { readManifest } from '../../pipeline/batch/manifest.js';
import { parseShard } from '../../pipeline/batch/pairs.js';
import { batchExitCode, type BatchReport, mergeReports } from '../../pipeline/batch/report.js';
import type { PairResult } from '../../pipeline/batch/results.js';
import { BatchControl, runBatch } from '../../pipeline/batch/run.js';
import { progressLine, summaryLines } from './batch-summary.js';

export interface BatchCommandArgs {
  manifest: string;
  output: string;
  jobs: number;
  buildJobs?: number;
  memoryPerJob: number;
  shard?: string;
  verify: boolean;
  force: boolean;
  junit?: string;
  json: boolean;
  cacheDir: string;
  runner?: string;
  image?: string;
  rootfs?: string;
}

/** The CLI's own entry point, which every pair's `klpforge build` runs through. */
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/klpforge.js');

export async function batchCommand(a: BatchCommandArgs, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const shard = a.shard !== undefined ? parseShard(a.shard) : undefined;
  const manifest = await readManifest(a.manifest);
  const version = await klpforgeVersion();
  const control = new BatchControl();
  const onSignal = (sig: NodeJS.Signals) => {
    err(`klpforge: batch interrupted by ${sig}: stopping the builds running (finished pairs are kept; run again to do the rest)`);
    void control.stop(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const live = liveStatus(process.stderr, err);
  let report: BatchReport;
  try {
    report = await runBatch(
      {
        manifest,
        outDir: path.resolve(a.output),
        cacheDir: path.resolve(a.cacheDir),
        klpforge: [process.execPath, BIN],
        version,
        jobs: a.jobs,
        ...(a.buildJobs !== undefined ? { buildJobs: a.buildJobs } : {}),
        memoryPerJobMb: a.memoryPerJob,
        ...(shard ? { shard } : {}),
        verify: a.verify,
        force: a.force,
        ...(a.runner ? { runner: a.runner } : {}),
        ...(a.image ? { image: a.image } : {}),
        ...(a.rootfs ? { rootfs: a.rootfs } : {}),
        events: live.events,
      },
      control,
    );
  } finally {
    for (const s of signals) process.off(s, onSignal);
    live.end();
  }
  if (a.junit) await writeFile(a.junit, junitXml(report));
  for (const line of summaryLines(report)) err(line);
  if (a.json) out(JSON.stringify(report, null, 2));
  if (control.stopped) return 128 + (os.constants.signals[control.stopped] ?? 2);
  return batchExitCode(report.summary);
}

/** `klpforge batch-merge`: shards' reports as one on stdout (and as JUnit with --junit). */
export async function batchMergeCommand(
  a: { reports: string[]; junit?: string },
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const reports = await Promise.all(
    a.reports.map(async (file) => {
      const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new BatchError('BATCH_REPORT', `${file}: cannot read the report (${e.code ?? e.message})`);
      });
      try {
        return { file, report: JSON.parse(text) as unknown };
      } catch {
        throw new BatchError('BATCH_REPORT', `${file}: not JSON: expected a batch report (OUTDIR/report.json or batch --json output)`);
      }
    }),
  );
  const merged = mergeReports(reports, (line) => err(`klpforge: ${line}`));
  if (a.junit) await writeFile(a.junit, junitXml(merged));
  for (const line of summaryLines(merged)) err(line);
  out(JSON.stringify(merged, null, 2));
  return batchExitCode(merged.summary);
}

async function klpforgeVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * On a terminal, one line rewritten in place; in a CI log, one line per pair
 * as it finishes (a log is read later, and a rewritten line is noise there).
 */
function liveStatus(stream: NodeJS.WriteStream, err: (line: string) => void) {
  const tty = stream.isTTY;
  const running = new Set<string>();
  const counts: Record<string, number> = { verified: 0, built: 0, refused: 0, failed: 0, cached: 0 };
  let total = 0;
  let done = 0;
  const draw = () => tty && stream.write(`\r\x1b[K${progressLine(done, total, [...running], counts)}`);
  const events = {
    planned: (pairs: readonly unknown[], slots: number) => {
      total = pairs.length;
      if (!tty) err(`klpforge: batch: ${total} pair(s), ${slots} at once`);
      draw();
    },
    started: (p: { id: string }) => {
      running.add(p.id);
      draw();
    },
    finished: (r: PairResult) => {
      running.delete(r.pair);
      done += 1;
      counts[r.cached ? 'cached' : r.status]! += 1;
      if (!tty) err(`klpforge: [${done}/${total}] ${r.pair}: ${r.status}${r.cached ? ' (cached)' : ''} ${r.seconds.toFixed(1)}s`);
      draw();
    },
  };
  return { events, end: () => tty && stream.write('\r\x1b[K') };
}
