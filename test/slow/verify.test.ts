import { cp } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import { chooseAccelerator, probeGuestRuns } from '../../src/verify/boot/accel.js';
import type { VerifyReport } from '../../src/verify/judge/evaluate.js';
import { findStaticBusybox } from '../../src/verify/boot/host-tools.js';
import { formatReport } from '../../src/verify/judge/report.js';
import { verifyModule } from '../../src/verify/verify.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

// Real QEMU (TCG here) booting the fixture kernel: a few seconds per run when idle, much more while
// kernels build on the same two cores. Limits are generous; nothing asserts wall time.
const TIMEOUT_MS = 10 * 60_000;

const CLI = path.join(REPO_ROOT, 'bin/klpforge.js');
const PATCHED = `grep -q 'this has been live patched' /proc/cmdline`;

async function cli(args: string[]) {
  return execa('node', [CLI, ...args], { reject: false, cwd: REPO_ROOT });
}

let scratch: DirectoryResult;

beforeAll(async () => {
  fixtureKernel();
  scratch = await dir({ prefix: 'klpforge-verify-test', unsafeCleanup: true });
}, TIMEOUT_MS);

afterAll(async () => {
  await scratch?.cleanup();
});

test(
  "the kernel's sample livepatch passes klpforge verify through the CLI, with every step passed in the JSON report",
  async () => {
    const k = fixtureKernel();
    const r = await cli([
      'verify',
      k.samplePatch,
      '--kernel',
      k.bzImage,
      '--check',
      PATCHED,
      '--check',
      'cat /proc/cmdline; ' + PATCHED,
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.ok).toBe(true);
    expect(report.failures).toEqual([]);
    expect(report.steps.map((s) => [s.id, s.status])).toEqual([
      ['before.1', 'passed'],
      ['before.2', 'passed'],
      ['insmod', 'passed'],
      ['transition', 'passed'],
      ['enabled', 'passed'],
      ['loaded.1', 'passed'],
      ['loaded.2', 'passed'],
      ['disable', 'passed'],
      ['unpatched', 'passed'],
      ['rmmod', 'passed'],
      ['after.1', 'passed'],
      ['after.2', 'passed'],
    ]);
    // The second check prints /proc/cmdline: unpatched, patched, unpatched again.
    const out = (id: string) => report.steps.find((s) => s.id === id)!.output;
    expect(out('before.2')).toEqual(['console=ttyS0 panic=-1']);
    expect(out('loaded.2')).toEqual(['this has been live patched']);
    expect(out('after.2')).toEqual(['console=ttyS0 panic=-1']);
    expect(report.steps.find((s) => s.id === 'insmod')!.kernelLog).toContain("livepatch: enabling patch 'livepatch_sample'");
    expect(report.guest.finished).toBe(true);
    expect(report.taint).toMatchObject({ letters: 'K', unexpected: [] });
    expect(report.kernelProblems).toEqual([]);
    // A pass leaves nothing behind unless --keep.
    expect(report.serialLogKept).toBe(false);
  },
  TIMEOUT_MS,
);

test(
  "a livepatch naming a function that does not exist fails verify, showing the kernel's own error",
  async () => {
    const k = fixtureKernel();
    // Built from a temporary copy: never inside the checkout.
    const src = path.join(scratch.path, 'broken-livepatch');
    await cp(path.join(REPO_ROOT, 'kernel-fixtures/verify/broken-livepatch'), src, { recursive: true });
    await execa('make', ['-C', k.plain, `M=${src}`, 'modules'], { stdin: 'ignore' });
    const ko = path.join(src, 'klpforge-broken-livepatch.ko');

    const r = await cli(['verify', ko, '--kernel', k.bzImage, '--check', PATCHED]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/^ {2}FAIL {2}insmod /m);
    expect(r.stdout).toContain("kernel | livepatch: symbol 'klpforge_no_such_function' not found in symbol table");
    expect(r.stdout).toContain("output | insmod: can't insert '/klpv/klpforge_broken_livepatch.ko': Invalid argument");
    // One line on stderr, with the kernel's words and where the full serial log is.
    const err = r.stderr.trim().split('\n');
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(
      /^klpforge: verify failed: step insmod .*symbol 'klpforge_no_such_function' not found.*; serial log: (\S+serial\.log)$/,
    );
    const serialLog = /serial log: (\S+)$/.exec(err[0]!)![1]!;
    const kept = await execa('grep', ['-c', 'klpforge_no_such_function', serialLog], { reject: false });
    expect(Number(kept.stdout)).toBeGreaterThan(0);
    await execa('rm', ['-rf', path.dirname(serialLog)]);
  },
  TIMEOUT_MS,
);

test(
  'a check that does not hold with the patch loaded fails verify, and the report names that step',
  async () => {
    const k = fixtureKernel();
    const report = await verifyModule({
      module: k.samplePatch,
      kernel: k.bzImage,
      checks: ['grep -q nonsense /proc/cmdline'],
      timeoutSeconds: 300,
      keep: false,
      accel: 'auto',
    });
    try {
      expect(report.ok).toBe(false);
      const status = Object.fromEntries(report.steps.map((s) => [s.id, s.status]));
      expect(status).toMatchObject({ 'before.1': 'passed', insmod: 'passed', 'loaded.1': 'failed', rmmod: 'passed', 'after.1': 'passed' });
      expect(report.failures).toEqual([
        expect.stringMatching(
          /^step loaded\.1 \(check 1 holds with the patch loaded: grep -q nonsense \/proc\/cmdline\) failed: exit 1, expected 0/,
        ),
      ]);
      expect(formatReport(report).join('\n')).toMatch(/^ {2}FAIL {2}loaded\.1 /m);
      expect(report.serialLogKept).toBe(true);
    } finally {
      await execa('rm', ['-rf', path.dirname(report.serialLog)]);
    }
  },
  TIMEOUT_MS,
);

test(
  "--modules puts the build directory's modules in the guest, so a check can insmod binfmt_misc.ko",
  async () => {
    const k = fixtureKernel();
    const check = `insmod /modules/fs/binfmt_misc.ko 2>/dev/null; grep -q '^binfmt_misc ' /proc/modules && ${PATCHED}`;
    const r = await cli(['verify', k.samplePatch, '--kernel', k.bzImage, '--modules', k.plain, '--check', check, '--json']);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.failures).toEqual([]);
    expect(r.exitCode).toBe(0);
  },
  TIMEOUT_MS,
);

test(
  'a guest that hangs is killed at --timeout and reported with the step it hung in and the console tail',
  async () => {
    const k = fixtureKernel();
    const report = await verifyModule({
      module: k.samplePatch,
      kernel: k.bzImage,
      checks: ['sleep 1000'],
      timeoutSeconds: 20,
      keep: false,
      accel: 'auto',
    });
    try {
      expect(report.ok).toBe(false);
      expect(report.guest.timedOut).toBe(true);
      // Under heavy load the guest may still be booting at the limit; when it got to the check, that step is named.
      const before = report.steps.find((s) => s.id === 'before.1')!;
      expect(['interrupted', 'not-reached']).toContain(before.status);
      expect(report.failures).toContainEqual(expect.stringMatching(/^the guest did not finish within 20s and was killed/));
      expect(report.serialTail.length).toBeGreaterThan(0);
      expect(formatReport(report).join('\n')).toContain('console lines:');
    } finally {
      await execa('rm', ['-rf', path.dirname(report.serialLog)]);
    }
  },
  TIMEOUT_MS,
);

test(
  "the accelerator probe's throw-away guest boots and reports back (under TCG here), and auto resolves once per process",
  async () => {
    const k = fixtureKernel();
    const inputs = { kernel: k.bzImage, busybox: await findStaticBusybox(), genInitCpio: k.genInitCpio };
    // PROBE_TIMEOUT_MS is 15 s; a loaded 2-core machine can push a TCG boot past it, so allow one retry.
    expect((await probeGuestRuns(inputs, 'tcg')) || (await probeGuestRuns(inputs, 'tcg'))).toBe(true);
    const first = chooseAccelerator('auto', inputs);
    expect(chooseAccelerator('auto', inputs)).toBe(first);
    expect(['kvm', 'tcg']).toContain(await first);
  },
  TIMEOUT_MS,
);
