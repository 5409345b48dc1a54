import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import { type ElfObject, readElfFile } from '../../src/elf/index.js';

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

/** Compiles C with the arm64 cross compiler into `dir`; returns the object's path. */
export async function compileAarch64(
  dir: string,
  name: string,
  source: string,
  flags: readonly string[] = AARCH64_KERNEL_FLAGS,
): Promise<string> {
  const src = path.join(dir, `${name}.c`);
  const obj = path.join(dir, `${name}.o`);
  await writeFile(src, source);
  try {
    await execa(AARCH64_GCC, ['-c', ...flags, '-o', obj, src]);
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT')
      throw new Error(`${AARCH64_GCC} not found: install Debian's gcc-aarch64-linux-gnu (the arm64 differ tests compile with it)`);
    throw new Error(`${AARCH64_GCC} failed on ${name}.c:\n${err.stderr ?? err.message}`);
  }
  return obj;
}

/**
 * The arm64 twin of kernelLikeDiffer (kernel-like-diff.ts): `diff(orig,
 * patched)` compiles both with the prelude in front and diffs the objects.
 * Call at a describe block's top level.
 */
export function aarch64KernelLikeDiffer(prelude: string): {
  objects: (orig: string, patched: string, flags?: readonly string[]) => Promise<[ElfObject, ElfObject]>;
  diff: (orig: string, patched: string, flags?: readonly string[]) => Promise<DiffResult>;
} {
  let tmp: DirectoryResult;
  let n = 0;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });
  const objects = async (
    orig: string,
    patched: string,
    flags: readonly string[] = AARCH64_KERNEL_FLAGS,
  ): Promise<[ElfObject, ElfObject]> => {
    const k = n++;
    const [a, b] = await Promise.all([
      compileAarch64(tmp.path, `orig${k}`, prelude + orig, flags),
      compileAarch64(tmp.path, `patched${k}`, prelude + patched, flags),
    ]);
    return Promise.all([readElfFile(a), readElfFile(b)]);
  };
  return {
    objects,
    async diff(orig, patched, flags: readonly string[] = AARCH64_KERNEL_FLAGS) {
      const [a, b] = await objects(orig, patched, flags);
      return diffObjects(a, b, { compilerFlags: flags.join(' '), output: true });
    },
  };
}
