import { compileCross, type CrossDiffer, crossKernelLikeDiffer, type CrossToolchain } from './cross-toolchain.js';

/** Debian's cross compiler (package gcc-powerpc64le-linux-gnu). */
export const PPC64LE_GCC = 'powerpc64le-linux-gnu-gcc';

/**
 * Linux 6.1's ppc64le flags with gcc 12 (arch/powerpc/Makefile with
 * ppc64le_defconfig, the top Makefile's ftrace and stack-protector flags):
 * ELFv2, the medium code model (data reached TOC-relative or through `.toc`
 * slots), -mprofile-kernel's `bl _mcount` after the global entry.
 */
export const PPC64LE_KERNEL_FLAGS: readonly string[] = [
  '-O2',
  '-ffunction-sections',
  '-fdata-sections',
  '-mlittle-endian',
  '-m64',
  '-msoft-float',
  '-mtraceback=no',
  '-mabi=elfv2',
  '-mcmodel=medium',
  '-mno-pointers-to-nested-functions',
  '-mcpu=power8',
  '-mtune=power10',
  '-mno-prefixed',
  '-mno-pcrel',
  '-mno-altivec',
  '-mno-vsx',
  '-mno-mma',
  '-mno-string',
  '-fno-asynchronous-unwind-tables',
  '-fno-strict-aliasing',
  '-fno-common',
  '-fno-PIE',
  '-fstack-protector-strong',
  '-mstack-protector-guard=tls',
  '-mstack-protector-guard-reg=r13',
  '-mstack-protector-guard-offset=3192',
  '-pg',
  '-mprofile-kernel',
];

const TOOLCHAIN: CrossToolchain = {
  gcc: PPC64LE_GCC,
  debianPackage: 'gcc-powerpc64le-linux-gnu',
  machine: 'ppc64le',
  flags: PPC64LE_KERNEL_FLAGS,
};

/** Compiles C with the ppc64le cross compiler into `dir`; returns the object's path. */
export function compilePpc64le(
  dir: string,
  name: string,
  source: string,
  flags: readonly string[] = PPC64LE_KERNEL_FLAGS,
): Promise<string> {
  return compileCross(TOOLCHAIN, dir, name, source, flags);
}

/** The ppc64le twin of kernelLikeDiffer (kernel-like-diff.ts); see crossKernelLikeDiffer. */
export function ppc64leKernelLikeDiffer(prelude: string): CrossDiffer {
  return crossKernelLikeDiffer(TOOLCHAIN, prelude);
}
