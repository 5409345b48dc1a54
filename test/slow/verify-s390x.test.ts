import path from 'node:path';
import { execa } from 'execa';
import type { VerifyReport } from '../../src/verify/evaluate.js';
import { cachedBusyboxPath } from '../../src/verify/machines.js';
import { REPO_ROOT } from '../helpers/kernel.js';
import { s390xKernel } from '../helpers/kernel-s390x.js';

// qemu-system-s390x under TCG (KVM cannot run an s390x guest on another architecture): about 3 s
// per boot when idle. The first run may build the s390x fixture kernel (minutes), hence the hour.
const BUILD_TIMEOUT_MS = 60 * 60_000;
const TIMEOUT_MS = 10 * 60_000;

const CLI = path.join(REPO_ROOT, 'bin/klpforge.js');
const PATCHED = `grep -q "this has been live patched" /proc/cmdline`;

beforeAll(async () => {
  await s390xKernel();
}, BUILD_TIMEOUT_MS);

test('the fixture names the busybox verify looks for: what scripts/fetch-busybox s390x fetched', async () => {
  const k = await s390xKernel();
  expect(k.arch).toBe('s390x');
  expect(k.busybox).toBe(cachedBusyboxPath('s390x'));
  expect(k.bzImage).toBe(path.join(k.plain, 'arch/s390/boot/bzImage'));
});

test(
  "the s390x kernel's sample livepatch passes klpforge verify in qemu-system-s390x: it loads, enables, and the check holds",
  async () => {
    const k = await s390xKernel();
    const r = await execa('node', [CLI, 'verify', k.samplePatch, '--kernel', k.bzImage, '--check', PATCHED, '--json'], {
      reject: false,
      cwd: REPO_ROOT,
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.ok).toBe(true);
    expect(report.failures).toEqual([]);
    expect(report.steps.map((s) => [s.id, s.status])).toEqual([
      ['before.1', 'passed'],
      ['insmod', 'passed'],
      ['transition', 'passed'],
      ['enabled', 'passed'],
      ['loaded.1', 'passed'],
      ['disable', 'passed'],
      ['unpatched', 'passed'],
      ['rmmod', 'passed'],
      ['after.1', 'passed'],
    ]);
    expect(report.steps.find((s) => s.id === 'insmod')!.kernelLog).toContain("livepatch: enabling patch 'livepatch_sample'");
    if (process.arch !== 's390x') expect(report.accel).toBe('tcg');
    expect(report.guest).toMatchObject({ finished: true, kernelRelease: '6.1.192' });
    expect(report.taint).toMatchObject({ letters: 'K', unexpected: [] });
    expect(report.kernelProblems).toEqual([]);
  },
  TIMEOUT_MS,
);
