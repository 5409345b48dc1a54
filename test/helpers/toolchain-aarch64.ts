import { compileCross, type CrossDiffer, crossKernelLikeDiffer, type CrossToolchain } from './cross-toolchain.js';

/** Debian's cross compiler (package gcc-aarch64-linux-gnu). */
export const AARCH64_GCC = 'aarch64-linux-gnu-gcc';

/**
 * Linux 6.1's arm64 flags with gcc 12 (arch/arm64/Makefile, the top
 * Makefile's, CONFIG_DYNAMIC_FTRACE_WITH_REGS's -fpatchable-function-entry=2),
 * as Debian's config builds them: pointer authentication (pac-ret+leaf; 6.1
 * keeps gcc off BTI), the stack protector's guard in sp_el0, frame pointers.
 */
export const AARCH64_KERNEL_FLAGS: readonly string[] = [
  '-O2',
  '-ffunction-sections',
  '-fdata-sections',
  '-mlittle-endian',
  '-fno-strict-aliasing',
  '-fno-common',
  '-fshort-wchar',
  '-fno-PIE',
  '-mgeneral-regs-only',
  '-mabi=lp64',
  '-fno-asynchronous-unwind-tables',
  '-fno-unwind-tables',
  '-mbranch-protection=pac-ret+leaf',
  '-fno-delete-null-pointer-checks',
  '-fno-allow-store-data-races',
  '-fstack-protector-strong',
  '-mstack-protector-guard=sysreg',
  '-mstack-protector-guard-reg=sp_el0',
  '-mstack-protector-guard-offset=1168',
  '-fno-omit-frame-pointer',
  '-fno-optimize-sibling-calls',
  '-ftrivial-auto-var-init=zero',
  '-fpatchable-function-entry=2',
  '-fno-strict-overflow',
  '-fno-stack-check',
  '-fconserve-stack',
];

const TOOLCHAIN: CrossToolchain = {
  gcc: AARCH64_GCC,
  debianPackage: 'gcc-aarch64-linux-gnu',
  machine: 'arm64',
  flags: AARCH64_KERNEL_FLAGS,
};

/** Compiles C with the arm64 cross compiler into `dir`; returns the object's path. */
export function compileAarch64(
  dir: string,
  name: string,
  source: string,
  flags: readonly string[] = AARCH64_KERNEL_FLAGS,
): Promise<string> {
  return compileCross(TOOLCHAIN, dir, name, source, flags);
}

/** The arm64 twin of kernelLikeDiffer (kernel-like-diff.ts); see crossKernelLikeDiffer. */
export function aarch64KernelLikeDiffer(prelude: string): CrossDiffer {
  return crossKernelLikeDiffer(TOOLCHAIN, prelude);
}
