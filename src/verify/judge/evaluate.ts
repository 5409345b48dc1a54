import { scanKernelLog, tailLines, type KernelProblem, type ParsedConsole } from './console-log.js';
import { expectationHeld } from '../guest/protocol.js';
import type { Accelerator } from '../boot/qemu.js';
import type { Expectation, StepKind, TestPlan } from '../guest/steps.js';
import { decodeTaint, taintLetters } from './taint.js';

/**
 * passed: the step's expectation held (for a "before"/"after" check that
 * means the check failed, as it should). interrupted: it began but the guest
 * died or was killed before it ended. not-reached: it never began.
 */
export type StepStatus = 'passed' | 'failed' | 'skipped' | 'interrupted' | 'not-reached';

export interface StepResult {
  readonly id: string;
  readonly kind: StepKind;
  readonly title: string;
  readonly expect: Expectation;
  readonly status: StepStatus;
  readonly exitCode: number | null;
  /** Why it did not pass, in words; absent for passed steps. */
  readonly reason?: string;
  readonly output: readonly string[];
  /** The step printed this many lines; only `output` was kept. */
  readonly outputTotalLines: number | null;
  /** Kernel messages printed while the step ran (insmod errors, "livepatch: ..."). */
  readonly kernelLog: readonly string[];
}

export interface GuestRun {
  readonly accel: Accelerator;
  readonly timedOut: boolean;
  readonly timeoutSeconds: number;
  /** null when QEMU was killed. */
  readonly qemuExitCode: number | null;
  readonly qemuStderr: string;
  readonly durationMs: number;
  readonly serialLog: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly module: string;
  readonly moduleName: string;
  readonly kernel: string;
  readonly checks: readonly string[];
  readonly accel: Accelerator;
  readonly durationMs: number;
  readonly guest: {
    /** The guest script reached its end and reported so. */
    readonly finished: boolean;
    readonly timedOut: boolean;
    readonly timeoutSeconds: number;
    readonly qemuExitCode: number | null;
    readonly kernelRelease: string | null;
  };
  readonly steps: readonly StepResult[];
  readonly kernelProblems: readonly KernelProblem[];
  /** null when the guest never reported it (it did not finish). */
  readonly taint: {
    readonly value: number;
    readonly letters: string;
    readonly unexpected: readonly { letter: string; name: string }[];
  } | null;
  /** Everything that went wrong, one line each; empty exactly when ok. */
  readonly failures: readonly string[];
  /** Path of the full serial log. */
  readonly serialLog: string;
  /** Whether serialLog still exists after the command (kept on failure or with --keep). */
  serialLogKept: boolean;
  /** Last console lines, when the guest did not finish: where it stopped. */
  readonly serialTail: readonly string[];
}

export interface EvaluateInput {
  readonly plan: TestPlan;
  readonly module: string;
  readonly kernel: string;
  readonly console: ParsedConsole;
  readonly consoleText: string;
  readonly run: GuestRun;
}

const SERIAL_TAIL_LINES = 30;
const MAX_PROBLEM_LINES_IN_FAILURES = 5;

function failureReason(expect: Expectation, kind: StepKind, exitCode: number): string {
  if (exitCode >= 128) return `killed by signal ${exitCode - 128} (exit ${exitCode})`;
  if (expect === 'fail') {
    return kind === 'check-before'
      ? 'the check already holds before the patch is loaded (exit 0): it cannot tell whether the patch works'
      : 'the check still holds after the patch was disabled and removed (exit 0)';
  }
  return `exit ${exitCode}, expected 0`;
}

/** Kernel lines that usually explain a failed step: livepatch's own messages, module loader errors. */
const TELLING_KERNEL_LINE = /livepatch|error|fail|not found|unknown symbol|invalid|denied|refus/i;

/**
 * The step's last output line and the most telling kernel line it caused,
 * so the one-line failure already carries the kernel's own words
 * (`insmod: can't insert ...: Invalid argument; kernel: livepatch: symbol ... not found`).
 */
function evidence(s: Pick<StepResult, 'output' | 'kernelLog'>): string {
  const parts: string[] = [];
  const out = [...s.output].reverse().find((l) => l.trim() !== '');
  if (out) parts.push(out.trim());
  const kernel = [...s.kernelLog].reverse().find((l) => TELLING_KERNEL_LINE.test(l));
  if (kernel) parts.push(`kernel: ${kernel.trim()}`);
  return parts.length ? ` (${parts.join('; ')})` : '';
}

export function evaluate(input: EvaluateInput): VerifyReport {
  const { plan, console: parsed, run } = input;
  const failures: string[] = [];

  // Set inside the map callback below: typed so the compiler does not narrow it to its initial null.
  let lastBegun = null as string | null;
  const steps: StepResult[] = plan.steps.map((p) => {
    const seen = parsed.steps.get(p.id);
    // Built in one place so JSON keys read in a stable, useful order: what, verdict, why, evidence.
    const result = (status: StepStatus, reason?: string): StepResult => ({
      id: p.id,
      kind: p.kind,
      title: p.title,
      expect: p.expect,
      status,
      ...(reason === undefined ? {} : { reason }),
      exitCode: seen?.exitCode ?? null,
      output: seen?.output ?? [],
      outputTotalLines: seen?.outputTotalLines ?? null,
      kernelLog: seen?.kernelLog ?? [],
    });
    if (!seen || (!seen.began && !seen.ended)) return result('not-reached', 'never started');
    if (seen.ended && seen.guestStatus === 'SKIP') return result('skipped', 'not run: the module did not load');
    if (!seen.ended) {
      lastBegun = p.id;
      return result(
        'interrupted',
        run.timedOut ? `still running when the guest was killed after ${run.timeoutSeconds}s` : 'the guest stopped while it ran',
      );
    }
    if (seen.exitCode === null) return result('failed', 'no exit code reported');
    if (expectationHeld(p.expect, seen.exitCode)) return result('passed');
    return result('failed', failureReason(p.expect, p.kind, seen.exitCode));
  });

  for (const s of steps) {
    if (s.status === 'failed' || s.status === 'interrupted')
      failures.push(`step ${s.id} (${s.title}) ${s.status}: ${s.reason}${evidence(s)}`);
  }

  if (!parsed.done) {
    if (run.timedOut) {
      failures.push(`the guest did not finish within ${run.timeoutSeconds}s and was killed${lastBegun ? ` during step ${lastBegun}` : ''}`);
    } else {
      const stderr = run.qemuStderr.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
      failures.push(
        `the guest stopped before finishing its steps (qemu exit ${run.qemuExitCode ?? 'signal'}${stderr ? `: ${stderr}` : ''})`,
      );
    }
  }

  const kernelProblems = scanKernelLog(parsed.otherLines);
  for (const p of kernelProblems.slice(0, MAX_PROBLEM_LINES_IN_FAILURES)) {
    failures.push(`kernel log line ${p.lineNo} reports a problem (${p.kind}): ${p.text.trim()}`);
  }
  if (kernelProblems.length > MAX_PROBLEM_LINES_IN_FAILURES) {
    failures.push(`... and ${kernelProblems.length - MAX_PROBLEM_LINES_IN_FAILURES} more kernel log lines like these`);
  }

  const taintText = parsed.info.get('tainted');
  const decoded = taintText === undefined ? null : decodeTaint(taintText);
  if (taintText !== undefined && decoded === null) failures.push(`the guest reported an unreadable taint value '${taintText}'`);
  if (decoded && decoded.unexpected.length > 0) {
    const list = decoded.unexpected.map((f) => `${f.letter} (${f.name})`).join(', ');
    failures.push(`the kernel is tainted ${taintLetters(decoded)} (${decoded.value}); not expected from a livepatch: ${list}`);
  }

  return {
    ok: failures.length === 0,
    module: input.module,
    moduleName: plan.moduleName,
    kernel: input.kernel,
    checks: plan.checks,
    accel: run.accel,
    durationMs: run.durationMs,
    guest: {
      finished: parsed.done,
      timedOut: run.timedOut,
      timeoutSeconds: run.timeoutSeconds,
      qemuExitCode: run.qemuExitCode,
      kernelRelease: parsed.info.get('kernel') ?? null,
    },
    steps,
    kernelProblems,
    taint: decoded && {
      value: decoded.value,
      letters: taintLetters(decoded),
      unexpected: decoded.unexpected.map((f) => ({ letter: f.letter, name: f.name })),
    },
    failures,
    serialLog: run.serialLog,
    serialLogKept: true,
    serialTail: parsed.done ? [] : tailLines(input.consoleText, SERIAL_TAIL_LINES),
  };
}
