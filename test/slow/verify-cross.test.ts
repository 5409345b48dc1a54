import path from 'node:path';
import { execa } from 'execa';
import type { VerifyReport } from '../../src/verify/judge/evaluate.js';
import { cachedBusyboxPath } from '../../src/verify/boot/machines.js';
import { REPO_ROOT } from '../helpers/kernel.js';
import { type CrossMachine, crossKernel } from '../helpers/kernel-cross.js';

// Each machine's QEMU under TCG (KVM cannot run a foreign guest): 3-8 s per boot when idle (pseries'
// firmware takes 4). The first run may build a fixture kernel (minutes), hence the hour.
const BUILD_TIMEOUT_MS = 60 * 60_000;
const TIMEOUT_MS = 10 * 60_000;

const CLI = path.join(REPO_ROOT, 'bin/klpforge.js');
const PATCHED = `grep -q "this has been live patched" /proc/cmdline`;

interface Row {
  arch: CrossMachine;
  qemu: string;
  /** Debian's name of the architecture (scripts/fetch-busybox ARCH). */
  debianArch: string;
  /** The image QEMU boots, in the plain build dir. */
  image: string;
  makeVars: string[];
  /** node's process.arch where KVM could run it. */
  nodeArch: string;
}

const ROWS: Row[] = [
  {
    arch: 's390x',
    qemu: 'qemu-system-s390x',
    debianArch: 's390x',
    image: 'arch/s390/boot/bzImage',
    makeVars: ['ARCH=s390', 'CROSS_COMPILE=s390x-linux-gnu-'],
    nodeArch: 's390x',
  },
  {
    arch: 'ppc64le',
    qemu: 'qemu-system-ppc64',
    debianArch: 'ppc64el',
    // pseries loads the ELF vmlinux itself.
    image: 'vmlinux',
    makeVars: ['ARCH=powerpc', 'CROSS_COMPILE=powerpc64le-linux-gnu-'],
    nodeArch: 'ppc64',
  },
];

describe.each(ROWS)('the $arch fixture in $qemu', (row) => {
  beforeAll(async () => {
    await crossKernel(row.arch);
  }, BUILD_TIMEOUT_MS);

  test('names the busybox verify looks for (scripts/fetch-busybox), the image QEMU boots and its make variables', async () => {
    const k = await crossKernel(row.arch);
    expect(k.arch).toBe(row.arch);
    expect(k.busybox).toBe(cachedBusyboxPath(row.debianArch));
    expect(k.bzImage).toBe(path.join(k.plain, row.image));
    expect(k.makeVars).toEqual(row.makeVars);
  });

  test(
    "the kernel's sample livepatch passes klpforge verify: it loads, enables, and the check holds",
    async () => {
      const k = await crossKernel(row.arch);
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
      if (process.arch !== row.nodeArch) expect(report.accel).toBe('tcg');
      // The guest's uname -r: the source's upstream version (6.1.192 from Debian's 6.1.192-3), no local suffix.
      expect(report.guest).toMatchObject({ finished: true, kernelRelease: k.sourceVersion.replace(/-[^-]*$/, '') });
      expect(report.taint).toMatchObject({ letters: 'K', unexpected: [] });
      expect(report.kernelProblems).toEqual([]);
    },
    TIMEOUT_MS,
  );
});
