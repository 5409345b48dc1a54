import { compileCross, type CrossDiffer, crossKernelLikeDiffer, type CrossToolchain } from './cross-toolchain.js';

/** Debian's cross compiler (package gcc-s390x-linux-gnu). */
export const S390X_GCC = 's390x-linux-gnu-gcc';

/**
 * Linux 6.1's s390x flags with gcc 12 (arch/s390/Makefile, the top Makefile's
 * ftrace flags, CONFIG_EXPOLINE_EXTERN as kpatch needs it), plus what a
 * livepatch object needs on s390x: module code lies more than 4 GiB from
 * vmlinux, so data goes through the GOT (-mno-pic-data-is-text-relative) and
 * no section anchors tie one object's data together.
 */
export const S390X_KERNEL_FLAGS: readonly string[] = [
  '-O2',
  '-ffunction-sections',
  '-fdata-sections',
  '-fPIE',
  '-m64',
  '-march=zEC12',
  '-mtune=zEC12',
  '-mpacked-stack',
  '-mbackchain',
  '-msoft-float',
  '-pg',
  '-mrecord-mcount',
  '-mnop-mcount',
  '-mfentry',
  '-mindirect-branch=thunk-extern',
  '-mfunction-return=thunk-extern',
  '-mindirect-branch-table',
  '-fno-asynchronous-unwind-tables',
  '-fno-strict-aliasing',
  '-fno-common',
  '-mno-pic-data-is-text-relative',
  '-fno-section-anchors',
];

const TOOLCHAIN: CrossToolchain = { gcc: S390X_GCC, debianPackage: 'gcc-s390x-linux-gnu', machine: 's390x', flags: S390X_KERNEL_FLAGS };

/** Compiles C with the s390x cross compiler into `dir`; returns the object's path. */
export function compileS390x(dir: string, name: string, source: string, flags: readonly string[] = S390X_KERNEL_FLAGS): Promise<string> {
  return compileCross(TOOLCHAIN, dir, name, source, flags);
}

/** The s390x twin of kernelLikeDiffer (kernel-like-diff.ts); see crossKernelLikeDiffer. */
export function s390xKernelLikeDiffer(prelude: string): CrossDiffer {
  return crossKernelLikeDiffer(TOOLCHAIN, prelude);
}
