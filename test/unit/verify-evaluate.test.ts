import { parseConsole } from '../../src/verify/judge/console-log.js';
import { evaluate, type GuestRun } from '../../src/verify/judge/evaluate.js';
import { failureSummary, formatReport } from '../../src/verify/judge/report.js';
import { planSteps } from '../../src/verify/guest/steps.js';
import {
  BROKEN_NONCE,
  brokenInsmodLog,
  HUNG_NONCE,
  hungLog,
  PASS_NONCE,
  passingLog,
  WARN_NONCE,
  warningLog,
} from './verify-console-fixtures.js';

const finishedRun: GuestRun = {
  accel: 'tcg',
  timedOut: false,
  timeoutSeconds: 120,
  qemuExitCode: 0,
  qemuStderr: '',
  durationMs: 3400,
  serialLog: '/tmp/x/serial.log',
};

function report(log: string, nonce: string, moduleName: string, checks: string[], run: GuestRun = finishedRun) {
  return evaluate({
    plan: planSteps(moduleName, checks),
    module: `/b/${moduleName}.ko`,
    kernel: '/k/bzImage',
    console: parseConsole(log, nonce),
    consoleText: log,
    run,
  });
}

const CHECK = "cat /proc/cmdline; grep -q 'this has been live patched' /proc/cmdline";

describe('evaluate: from guest report to verdict', () => {
  test('the sample livepatch run passes: every step passed, taint K only, nothing to complain about', () => {
    const r = report(passingLog, PASS_NONCE, 'livepatch_sample', [CHECK]);
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.steps.every((s) => s.status === 'passed')).toBe(true);
    expect(r.taint).toEqual({ value: 32768, letters: 'K', unexpected: [] });
    expect(r.guest).toMatchObject({ finished: true, kernelRelease: '6.1.192' });
    expect(r.serialTail).toEqual([]);
  });

  test('a check that already holds before loading fails the run: the check cannot tell anything', () => {
    const log = passingLog.replace('end:before.1:1:PASS', 'end:before.1:0:FAIL');
    const r = report(log, PASS_NONCE, 'livepatch_sample', [CHECK]);
    expect(r.ok).toBe(false);
    expect(r.steps.find((s) => s.id === 'before.1')).toMatchObject({ status: 'failed', exitCode: 0 });
    expect(r.failures[0]).toMatch(/^step before\.1 .* failed: the check already holds before the patch is loaded/);
  });

  test('a check killed by a signal does not count as "failing as expected"', () => {
    const log = passingLog.replace('end:after.1:1:PASS', 'end:after.1:137:FAIL');
    const r = report(log, PASS_NONCE, 'livepatch_sample', [CHECK]);
    expect(r.steps.find((s) => s.id === 'after.1')).toMatchObject({ status: 'failed', reason: 'killed by signal 9 (exit 137)' });
  });

  test("a broken livepatch: insmod failed with the kernel's own error in the one-line failure, later steps skipped", () => {
    const r = report(brokenInsmodLog, BROKEN_NONCE, 'klpforge_broken_livepatch', [CHECK]);
    expect(r.ok).toBe(false);
    expect(r.steps.map((s) => s.status)).toEqual([
      'passed',
      'failed',
      'skipped',
      'skipped',
      'skipped',
      'skipped',
      'skipped',
      'skipped',
      'skipped',
    ]);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toContain("insmod: can't insert '/klpv/klpforge_broken_livepatch.ko': Invalid argument");
    expect(r.failures[0]).toContain("kernel: livepatch: symbol 'klpforge_no_such_function' not found in symbol table");
    expect(r.taint).toMatchObject({ letters: 'OK', unexpected: [] });
  });

  test('a guest killed at the time limit: the running step is interrupted, the rest not reached, the console tail kept', () => {
    const r = report(hungLog, HUNG_NONCE, 'livepatch_sample', ['sleep 100'], {
      ...finishedRun,
      timedOut: true,
      timeoutSeconds: 12,
      qemuExitCode: null,
    });
    expect(r.ok).toBe(false);
    expect(r.steps[0]).toMatchObject({
      id: 'before.1',
      status: 'interrupted',
      reason: 'still running when the guest was killed after 12s',
    });
    expect(r.steps.slice(1).every((s) => s.status === 'not-reached')).toBe(true);
    expect(r.failures).toContain('the guest did not finish within 12s and was killed during step before.1');
    expect(r.serialTail.at(-1)).toBe('clocksource: Switched to clocksource tsc');
    expect(r.taint).toBeNull();
  });

  test("a guest that stopped early without a timeout names QEMU's exit and its last stderr lines", () => {
    const r = report(hungLog, HUNG_NONCE, 'livepatch_sample', ['true'], {
      ...finishedRun,
      qemuExitCode: 1,
      qemuStderr: 'qemu-system-x86_64: could not load kernel\n',
    });
    expect(r.failures).toContain('the guest stopped before finishing its steps (qemu exit 1: qemu-system-x86_64: could not load kernel)');
  });

  test('a kernel WARNING fails the run even though every step passed, and so do taints besides K and O', () => {
    const r = report(warningLog, WARN_NONCE, 'livepatch_sample', []);
    expect(r.ok).toBe(false);
    expect(r.kernelProblems.map((p) => p.kind)).toEqual(['warning', 'call-trace']);
    expect(r.failures.some((f) => f.startsWith('kernel log line 5 reports a problem (warning): [    1.000200] WARNING: CPU: 0'))).toBe(
      true,
    );
    // 33280 = K (15) + W (9)
    expect(r.taint).toEqual({ value: 33280, letters: 'WK', unexpected: [{ letter: 'W', name: 'kernel issued a warning' }] });
    expect(r.failures.some((f) => /tainted WK \(33280\); not expected from a livepatch: W \(kernel issued a warning\)/.test(f))).toBe(true);
  });
});

describe('formatReport', () => {
  test('shows each step with its status, check output, and for a failure the kernel lines and the serial log', () => {
    const r = report(brokenInsmodLog, BROKEN_NONCE, 'klpforge_broken_livepatch', [CHECK]);
    const text = formatReport(r).join('\n');
    expect(text).toMatch(/^klpforge verify klpforge_broken_livepatch\.ko .*: FAILED$/m);
    expect(text).toMatch(/^ {2}FAIL {2}insmod /m);
    expect(text).toContain("        kernel | livepatch: symbol 'klpforge_no_such_function' not found in symbol table");
    expect(text).toContain('Serial log: /tmp/x/serial.log');
    expect(failureSummary(r)).toMatch(/^verify failed: step insmod .*; serial log: \/tmp\/x\/serial\.log$/);
  });

  test('a step running when the time limit struck is HUNG; one running when the guest died on its own is STOP', () => {
    const killed = report(hungLog, HUNG_NONCE, 'livepatch_sample', ['sleep 100'], {
      ...finishedRun,
      timedOut: true,
      timeoutSeconds: 12,
      qemuExitCode: null,
    });
    const died = report(hungLog, HUNG_NONCE, 'livepatch_sample', ['reboot -f']);
    expect(formatReport(killed)).toContainEqual(expect.stringMatching(/^ {2}HUNG {2}before\.1 /));
    expect(formatReport(died)).toContainEqual(expect.stringMatching(/^ {2}STOP {2}before\.1 .*the guest stopped while it ran$/));
    expect(formatReport(killed)).toContain('Last 7 console lines:');
  });

  test('a passing report shows /proc/cmdline before, during and after the patch through the check output', () => {
    const r = report(passingLog, PASS_NONCE, 'livepatch_sample', [CHECK]);
    r.serialLogKept = false;
    const text = formatReport(r);
    expect(text[0]).toMatch(/PASSED$/);
    expect(text.filter((l) => l.includes('output |'))).toEqual([
      '        output | console=ttyS0 panic=-1',
      '        output | this has been live patched',
      '        output | console=ttyS0 panic=-1',
    ]);
    expect(text.join('\n')).not.toContain('Serial log');
  });
});
