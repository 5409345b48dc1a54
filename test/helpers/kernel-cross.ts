import path from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT } from './kernel.js';

/** The machines scripts/fetch-kernel cross-builds a fixture for (plain build only). */
export type CrossMachine = 's390x' | 'ppc64le';

/** Paths of a cross-built Linux 6.1 fixture kernel, as `scripts/fetch-kernel --arch ARCH --json` prints them. */
export interface CrossKernel {
  key: string;
  sourceVersion: string;
  /** The cross gcc's `--version` first line. */
  compiler: string;
  /** Unpacked linux-source-6.1 tree (the x86 fixture's too). */
  source: string;
  /** Plain build directory: vmlinux, modules, Module.symvers. */
  plain: string;
  vmlinux: string;
  /** What QEMU boots: plain/arch/s390/boot/bzImage on s390x, plain/vmlinux itself on ppc64le (pseries). */
  bzImage: string;
  /** samples/livepatch/livepatch-sample.ko of the plain build. */
  samplePatch: string;
  /** usr/gen_init_cpio of the plain build (a host program). */
  genInitCpio: string;
  arch: CrossMachine;
  /** What every make in the plain tree needs: ARCH= and CROSS_COMPILE=. */
  makeVars: string[];
  /** The machine's static busybox scripts/fetch-busybox put in the cache: verify's guests run it. */
  busybox: string;
}

const FETCH_KERNEL = path.join(REPO_ROOT, 'scripts/fetch-kernel');
const cached = new Map<CrossMachine, Promise<CrossKernel>>();

/**
 * A cross-built fixture kernel, built when it is not cached. Unlike the x86
 * fixture (built by scripts/test before jest), a test that needs one builds
 * it (about 4 minutes for s390x, 5 for ppc64le, on 2 idle cores; callers
 * give their beforeAll an hour: other builds may share the cores) rather
 * than skipping. fetch-kernel holds a lock, so test files asking at once
 * build it once.
 */
export function crossKernel(arch: CrossMachine): Promise<CrossKernel> {
  let k = cached.get(arch);
  if (k === undefined) cached.set(arch, (k = fetchCrossKernel(arch)));
  return k;
}

async function fetchCrossKernel(arch: CrossMachine): Promise<CrossKernel> {
  const check = await execa(FETCH_KERNEL, ['--arch', arch, '--check'], { reject: false, stdin: 'ignore' });
  if (check.exitCode === 0) return JSON.parse(check.stdout) as CrossKernel;
  if (check.exitCode !== 3) throw new Error(`scripts/fetch-kernel --arch ${arch} --check failed: ${check.stderr.trim()}`);
  // Not built (or its busybox not fetched): build it, its progress on the test's stderr.
  const built = await execa(FETCH_KERNEL, ['--arch', arch, '--json'], { reject: false, stdin: 'ignore', stderr: 'inherit' });
  if (built.exitCode !== 0) throw new Error(`scripts/fetch-kernel --arch ${arch} failed (exit ${built.exitCode}); its messages are above`);
  return JSON.parse(built.stdout) as CrossKernel;
}
