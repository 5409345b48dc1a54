import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import { type ElfObject, readElfFile } from '../../src/elf/index.js';

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

/** Compiles C with the s390x cross compiler into `dir`; returns the object's path. */
export async function compileS390x(
  dir: string,
  name: string,
  source: string,
  flags: readonly string[] = S390X_KERNEL_FLAGS,
): Promise<string> {
  const src = path.join(dir, `${name}.c`);
  const obj = path.join(dir, `${name}.o`);
  await writeFile(src, source);
  try {
    await execa(S390X_GCC, ['-c', ...flags, '-o', obj, src]);
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT')
      throw new Error(`${S390X_GCC} not found: install Debian's gcc-s390x-linux-gnu (the s390x differ tests compile with it)`);
    throw new Error(`${S390X_GCC} failed on ${name}.c:\n${err.stderr ?? err.message}`);
  }
  return obj;
}

/**
 * The s390x twin of kernelLikeDiffer (kernel-like-diff.ts): `diff(orig,
 * patched)` compiles both with the prelude in front and diffs the objects.
 * Call at a describe block's top level.
 */
export function s390xKernelLikeDiffer(prelude: string): {
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
  const objects = async (orig: string, patched: string, flags: readonly string[] = S390X_KERNEL_FLAGS): Promise<[ElfObject, ElfObject]> => {
    const k = n++;
    const [a, b] = await Promise.all([
      compileS390x(tmp.path, `orig${k}`, prelude + orig, flags),
      compileS390x(tmp.path, `patched${k}`, prelude + patched, flags),
    ]);
    return Promise.all([readElfFile(a), readElfFile(b)]);
  };
  return {
    objects,
    async diff(orig, patched, flags: readonly string[] = S390X_KERNEL_FLAGS) {
      const [a, b] = await objects(orig, patched, flags);
      return diffObjects(a, b, { compilerFlags: flags.join(' '), output: true });
    },
  };
}
