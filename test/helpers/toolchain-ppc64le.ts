import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import { type ElfObject, readElfFile } from '../../src/elf/index.js';

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

/** Compiles C with the ppc64le cross compiler into `dir`; returns the object's path. */
export async function compilePpc64le(
  dir: string,
  name: string,
  source: string,
  flags: readonly string[] = PPC64LE_KERNEL_FLAGS,
): Promise<string> {
  const src = path.join(dir, `${name}.c`);
  const obj = path.join(dir, `${name}.o`);
  await writeFile(src, source);
  try {
    await execa(PPC64LE_GCC, ['-c', ...flags, '-o', obj, src]);
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT')
      throw new Error(`${PPC64LE_GCC} not found: install Debian's gcc-powerpc64le-linux-gnu (the ppc64le differ tests compile with it)`);
    throw new Error(`${PPC64LE_GCC} failed on ${name}.c:\n${err.stderr ?? err.message}`);
  }
  return obj;
}

/**
 * The ppc64le twin of kernelLikeDiffer (kernel-like-diff.ts): `diff(orig,
 * patched)` compiles both with the prelude in front and diffs the objects.
 * Call at a describe block's top level.
 */
export function ppc64leKernelLikeDiffer(prelude: string): {
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
    flags: readonly string[] = PPC64LE_KERNEL_FLAGS,
  ): Promise<[ElfObject, ElfObject]> => {
    const k = n++;
    const [a, b] = await Promise.all([
      compilePpc64le(tmp.path, `orig${k}`, prelude + orig, flags),
      compilePpc64le(tmp.path, `patched${k}`, prelude + patched, flags),
    ]);
    return Promise.all([readElfFile(a), readElfFile(b)]);
  };
  return {
    objects,
    async diff(orig, patched, flags: readonly string[] = PPC64LE_KERNEL_FLAGS) {
      const [a, b] = await objects(orig, patched, flags);
      return diffObjects(a, b, { compilerFlags: flags.join(' '), output: true });
    },
  };
}
