import type { BatchReport } from '../../pipeline/batch/report.js';
import { pairId } from '../../pipeline/batch/pairs.js';
import { headline, type PairResult } from '../../pipeline/batch/results.js';

/**
 * The batch on one screen: patch sets down, kernels across, each cell the
 * pair's status; then the pairs without a module, one line each, and the
 * totals. Wide manifests (more kernels than fit) are listed pair by pair.
 */
export function summaryLines(report: BatchReport, width = 120, maxProblems = 15): string[] {
  const byPair = new Map(report.results.map((r) => [r.pair, r]));
  const cell = (r: PairResult | undefined) => (r === undefined ? '-' : `${r.status}${r.cached ? '*' : ''}`);
  const setWidth = Math.max(9, ...report.patchsets.map((p) => p.length));
  const colWidth = Math.max(10, ...report.kernels.map((k) => k.length)) + 2;
  const lines: string[] = [];
  if (setWidth + colWidth * report.kernels.length <= width) {
    lines.push(['patch set'.padEnd(setWidth), ...report.kernels.map((k) => k.padStart(colWidth))].join(''));
    for (const p of report.patchsets) {
      const row = report.kernels.map((k) => byPair.get(pairId(p, k)));
      if (row.every((r) => r === undefined)) continue; // another shard's
      lines.push([p.padEnd(setWidth), ...row.map((r) => cell(r).padStart(colWidth))].join(''));
    }
  } else {
    for (const r of report.results) lines.push(`${r.pair.padEnd(setWidth + colWidth)} ${cell(r)}`);
  }
  const problems = report.results.filter((r) => r.status === 'refused' || r.status === 'failed');
  if (problems.length > 0) lines.push('');
  for (const r of problems.slice(0, maxProblems)) lines.push(`${r.pair}: ${r.status}: ${oneLine(r)}`);
  if (problems.length > maxProblems) lines.push(`… and ${problems.length - maxProblems} more in report.json`);
  const s = report.summary;
  lines.push(
    '',
    `${s.pairs} pair(s): ${s.verified} verified, ${s.built} built, ${s.refused} refused, ${s.failed} failed` +
      `${s.cached > 0 ? ` (${s.cached} cached*)` : ''}${s.missing > 0 ? `, ${s.missing} not run` : ''} in ${s.pairs > 0 ? report.wallSeconds.toFixed(1) : '0'}s`,
  );
  return lines;
}

function oneLine(r: PairResult): string {
  const text = headline(r);
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

/** The live line on a terminal: counts, and what is building now. */
export function progressLine(done: number, total: number, running: readonly string[], counts: Readonly<Record<string, number>>): string {
  const parts = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`);
  const now =
    running.length > 0 ? ` | building ${running.slice(0, 3).join(', ')}${running.length > 3 ? ` +${running.length - 3}` : ''}` : '';
  return `batch ${done}/${total}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}${now}`;
}
