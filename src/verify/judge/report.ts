import path from 'node:path';
import type { StepResult, StepStatus, VerifyReport } from './evaluate.js';

const LABEL: Record<StepStatus, string> = {
  passed: 'PASS',
  failed: 'FAIL',
  skipped: 'SKIP',
  interrupted: 'STOP',
  'not-reached': '----',
};

/** Step output lines shown per step; the JSON form carries everything the guest sent. */
const SHOWN_OUTPUT_LINES = 12;
const SHOWN_KERNEL_LINES = 20;

function isCheck(s: StepResult): boolean {
  return s.kind === 'check-before' || s.kind === 'check-loaded' || s.kind === 'check-after';
}

function stepLines(s: StepResult, idWidth: number, guestKilled: boolean): string[] {
  const exit = s.exitCode === null ? '' : ` (exit ${s.exitCode})`;
  const why = s.status === 'passed' || s.status === 'not-reached' ? '' : `: ${s.reason ?? ''}`;
  // A step still running when the time limit killed the guest hung; otherwise the guest died under it.
  const label = s.status === 'interrupted' && guestKilled ? 'HUNG' : LABEL[s.status];
  const lines = [`  ${label}  ${s.id.padEnd(idWidth)}  ${s.title}${s.status === 'passed' ? exit : why}`];
  const trouble = s.status === 'failed' || s.status === 'interrupted';
  // Check output is what people came for ("cat /proc/cmdline" before and after); other steps only matter when they broke.
  if (isCheck(s) || trouble) {
    const out = s.output.slice(0, SHOWN_OUTPUT_LINES);
    for (const l of out) lines.push(`        output | ${l}`);
    const total = s.outputTotalLines ?? s.output.length;
    if (total > out.length) lines.push(`        output | ... ${total - out.length} more lines`);
  }
  if (trouble) {
    const k = s.kernelLog.slice(-SHOWN_KERNEL_LINES);
    for (const l of k) lines.push(`        kernel | ${l}`);
  }
  return lines;
}

/** The human-readable report: one line per step, then what went wrong and where the serial log is. */
export function formatReport(r: VerifyReport): string[] {
  const secs = (r.durationMs / 1000).toFixed(1);
  const lines: string[] = [
    `klpforge verify ${path.basename(r.module)} (${r.moduleName}) on ${r.kernel} [${r.accel}, ${secs}s]: ${r.ok ? 'PASSED' : 'FAILED'}`,
  ];
  const idWidth = Math.max(...r.steps.map((s) => s.id.length));
  for (const s of r.steps) lines.push(...stepLines(s, idWidth, r.guest.timedOut));

  const kernel = r.guest.kernelRelease ? `kernel ${r.guest.kernelRelease}` : 'kernel release not reported';
  const taint = r.taint ? `tainted ${r.taint.value}${r.taint.letters ? ` (${r.taint.letters})` : ''}` : 'taint not reported';
  lines.push(`  ${kernel}, ${taint}, ${r.kernelProblems.length} kernel log problem(s)`);

  if (r.failures.length > 0) {
    lines.push('', 'Failures:');
    for (const f of r.failures) lines.push(`  - ${f}`);
  }
  if (r.serialTail.length > 0) {
    lines.push('', `Last ${r.serialTail.length} console lines:`);
    for (const l of r.serialTail) lines.push(`  | ${l}`);
  }
  if (r.serialLogKept) lines.push('', `Serial log: ${r.serialLog}`);
  return lines;
}

/** The first failure, for the CLI's one-line error. */
export function failureSummary(r: VerifyReport): string {
  const first = r.failures[0] ?? 'verification failed';
  const more = r.failures.length > 1 ? ` (+${r.failures.length - 1} more)` : '';
  return `verify failed: ${first}${more}${r.serialLogKept ? `; serial log: ${r.serialLog}` : ''}`;
}

export function reportJson(r: VerifyReport): string {
  return JSON.stringify(r, null, 2);
}
