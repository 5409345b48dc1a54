import { cleanConsoleLine, parseConsole, scanKernelLog, tailLines } from '../../src/verify/judge/console-log.js';
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

describe('parseConsole: the guest report read back from the serial log', () => {
  test('a passing run: every step ended with its exit code, output and the kernel lines it caused', () => {
    const p = parseConsole(passingLog, PASS_NONCE);
    expect(p.done).toBe(true);
    expect([...p.steps.keys()]).toEqual([
      'before.1',
      'insmod',
      'transition',
      'enabled',
      'loaded.1',
      'disable',
      'unpatched',
      'rmmod',
      'after.1',
    ]);
    expect(p.steps.get('before.1')).toMatchObject({
      began: true,
      ended: true,
      exitCode: 1,
      guestStatus: 'PASS',
      output: ['console=ttyS0 panic=-1'],
    });
    expect(p.steps.get('loaded.1')!.output).toEqual(['this has been live patched']);
    expect(p.steps.get('insmod')!.kernelLog).toEqual([
      'livepatch_sample: tainting kernel with TAINT_LIVEPATCH',
      "livepatch: enabling patch 'livepatch_sample'",
      "livepatch: 'livepatch_sample': starting patching transition",
      "livepatch: 'livepatch_sample': patching complete",
    ]);
    expect(p.steps.get('disable')!.kernelLog).toHaveLength(2);
    expect(p.info.get('tainted')).toBe('32768');
    expect(p.info.get('kernel')).toBe('6.1.192');
  });

  test('CR line ends and the SeaBIOS screen-clearing escapes are gone from the lines kept', () => {
    const p = parseConsole(passingLog, PASS_NONCE);
    for (const l of p.otherLines) expect(l.text).not.toMatch(/[\r\x1b]/);
    expect(p.otherLines[0]!.text).toBe('SeaBIOS (version 1.16.2-debian-1.16.2-1)');
    expect(p.otherLines.find((l) => l.text.startsWith('Booting from ROM'))!.text).toMatch(/Linux version 6\.1\.192/);
  });

  test('non-marker lines keep their line numbers in the serial log file, so people can find them', () => {
    const p = parseConsole(passingLog, PASS_NONCE);
    const enabling = p.otherLines.find((l) => l.text.includes('enabling patch'))!;
    expect(passingLog.split('\n')[enabling.lineNo - 1]).toContain('enabling patch');
  });

  test("a failed insmod: exit code, insmod error text and the kernel's livepatch error, then skipped steps", () => {
    const p = parseConsole(brokenInsmodLog, BROKEN_NONCE);
    const insmod = p.steps.get('insmod')!;
    expect(insmod).toMatchObject({ ended: true, exitCode: 22, guestStatus: 'FAIL' });
    expect(insmod.output).toEqual(["insmod: can't insert '/klpv/klpforge_broken_livepatch.ko': Invalid argument"]);
    expect(insmod.kernelLog).toContain("livepatch: symbol 'klpforge_no_such_function' not found in symbol table");
    expect(p.steps.get('rmmod')).toMatchObject({ began: false, ended: true, exitCode: null, guestStatus: 'SKIP' });
  });

  test('a hung guest: the running step began but never ended, and the report is not done', () => {
    const p = parseConsole(hungLog, HUNG_NONCE);
    expect(p.done).toBe(false);
    expect(p.steps.get('before.1')).toMatchObject({ began: true, ended: false, exitCode: null });
    expect(p.steps.get('before.1')!.kernelLog).toHaveLength(3);
  });

  test('printk timestamps before markers are tolerated, colons in output survive, truncation is recorded', () => {
    const p = parseConsole(warningLog, WARN_NONCE);
    const s = p.steps.get('loaded.1')!;
    expect(s.output).toEqual(['BUG: this is only what the check printed: a:b:c', 'WARNING: also just check output']);
    expect(s.outputTotalLines).toBe(57);
    expect(s.exitCode).toBe(0);
  });

  test("markers carrying another run's nonce are ordinary text, not results", () => {
    const p = parseConsole(warningLog, WARN_NONCE);
    expect(p.steps.has('loaded.2')).toBe(false);
    expect(p.otherLines.some((l) => l.text.includes('deadbeef0000'))).toBe(true);
    expect(parseConsole(passingLog, 'ffffffffffff').steps.size).toBe(0);
  });
});

describe('scanKernelLog', () => {
  test('a clean boot and livepatch run has no problems', () => {
    expect(scanKernelLog(parseConsole(passingLog, PASS_NONCE).otherLines)).toEqual([]);
    expect(scanKernelLog(parseConsole(brokenInsmodLog, BROKEN_NONCE).otherLines)).toEqual([]);
  });

  test('finds the WARNING and its Call Trace, but not the check output that only looks like them', () => {
    const problems = scanKernelLog(parseConsole(warningLog, WARN_NONCE).otherLines);
    expect(problems.map((p) => p.kind)).toEqual(['warning', 'call-trace']);
    expect(problems[0]!.text).toContain('WARNING: CPU: 0 PID: 71 at fs/proc/cmdline.c:9');
    expect(problems[0]!.lineNo).toBe(5);
  });

  test('knows oopses, BUGs and panics', () => {
    const lines = [
      'BUG: kernel NULL pointer dereference, address: 0000000000000008',
      'Oops: 0002 [#1] PREEMPT SMP NOPTI',
      'general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP',
      'Kernel panic - not syncing: Fatal exception',
      "livepatch: enabling patch 'x'",
    ].map((text, i) => ({ lineNo: i + 1, text }));
    expect(scanKernelLog(lines).map((p) => p.kind)).toEqual(['bug', 'oops', 'general-protection-fault', 'panic']);
  });
});

describe('helpers', () => {
  test('cleanConsoleLine drops escapes, CRs and NULs only', () => {
    expect(cleanConsoleLine('\x1b[2J\x1b[0mhello: world\r')).toBe('hello: world');
    expect(cleanConsoleLine('\x1bc\x00x')).toBe('x');
  });

  test('tailLines keeps the last non-empty lines, cleaned', () => {
    expect(tailLines(hungLog, 2)).toEqual([
      'tsc: Refined TSC clocksource calibration: 2096.006 MHz',
      'clocksource: Switched to clocksource tsc',
    ]);
  });
});
