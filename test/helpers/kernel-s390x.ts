import path from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT } from './kernel.js';

/** Paths of the s390x Linux 6.1 fixture kernel built by `scripts/fetch-kernel --arch s390x` (plain build only). */
export interface S390xKernel {
  key: string;
  sourceVersion: string;
  /** `s390x-linux-gnu-gcc --version`'s first line. */
  compiler: string;
  /** Unpacked linux-source-6.1 tree (the x86 fixture's too). */
  source: string;
  /** Plain build directory: vmlinux, bzImage, modules, Module.symvers. */
  plain: string;
  vmlinux: string;
  /** plain/arch/s390/boot/bzImage: what qemu-system-s390x boots. */
  bzImage: string;
  /** samples/livepatch/livepatch-sample.ko of the plain build. */
  samplePatch: string;
  /** usr/gen_init_cpio of the plain build (a host program). */
  genInitCpio: string;
  arch: 's390x';
  /** What every make in the plain tree needs: ARCH=s390 CROSS_COMPILE=s390x-linux-gnu-. */
  makeVars: string[];
  /** The static s390x busybox scripts/fetch-busybox put in the cache: verify's guests run it. */
  busybox: string;
}

const FETCH_KERNEL = path.join(REPO_ROOT, 'scripts/fetch-kernel');
let cached: Promise<S390xKernel> | undefined;

/**
 * The s390x fixture kernel, built when it is not cached. Unlike the x86
 * fixture (built by scripts/test before jest), nothing else builds this one:
 * a test that needs it builds it (about 4 minutes on 2 idle cores; callers
 * give their beforeAll an hour: other builds may share the cores) rather than skipping. fetch-kernel holds a lock,
 * so test files asking at once build it once.
 */
export function s390xKernel(): Promise<S390xKernel> {
  cached ??= fetchS390xKernel();
  return cached;
}

async function fetchS390xKernel(): Promise<S390xKernel> {
  const check = await execa(FETCH_KERNEL, ['--arch', 's390x', '--check'], { reject: false, stdin: 'ignore' });
  if (check.exitCode === 0) return JSON.parse(check.stdout) as S390xKernel;
  if (check.exitCode !== 3) throw new Error(`scripts/fetch-kernel --arch s390x --check failed: ${check.stderr.trim()}`);
  // Not built (or its busybox not fetched): build it, its progress on the test's stderr.
  const built = await execa(FETCH_KERNEL, ['--arch', 's390x', '--json'], { reject: false, stdin: 'ignore', stderr: 'inherit' });
  if (built.exitCode !== 0) throw new Error(`scripts/fetch-kernel --arch s390x failed (exit ${built.exitCode}); its messages are above`);
  return JSON.parse(built.stdout) as S390xKernel;
}
