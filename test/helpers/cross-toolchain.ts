import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import { type ElfObject, readElfFile } from '../../src/elf/index.js';

/** One of Debian's cross compilers and the kernel's flags for its machine. */
export interface CrossToolchain {
  /** `s390x-linux-gnu-gcc` */
  gcc: string;
  /** The Debian package that has it, named when it is missing. */
  debianPackage: string;
  /** The machine as the tests say it (`s390x`). */
  machine: string;
  flags: readonly string[];
}

/** Compiles C with a cross compiler into `dir`; returns the object's path. */
export async function compileCross(
  tc: CrossToolchain,
  dir: string,
  name: string,
  source: string,
  flags: readonly string[] = tc.flags,
): Promise<string> {
  const src = path.join(dir, `${name}.c`);
  const obj = path.join(dir, `${name}.o`);
  await writeFile(src, source);
  try {
    await execa(tc.gcc, ['-c', ...flags, '-o', obj, src]);
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT')
      throw new Error(`${tc.gcc} not found: install Debian's ${tc.debianPackage} (the ${tc.machine} differ tests compile with it)`);
    throw new Error(`${tc.gcc} failed on ${name}.c:\n${err.stderr ?? err.message}`);
  }
  return obj;
}

/** What the cross twins of kernelLikeDiffer (kernel-like-diff.ts) give a test. */
export interface CrossDiffer {
  objects: (orig: string, patched: string, flags?: readonly string[]) => Promise<[ElfObject, ElfObject]>;
  diff: (orig: string, patched: string, flags?: readonly string[]) => Promise<DiffResult>;
}

/**
 * The cross twin of kernelLikeDiffer: `diff(orig, patched)` compiles both
 * with the prelude in front and diffs the objects, the output object kept.
 * Call at a describe block's top level.
 */
export function crossKernelLikeDiffer(tc: CrossToolchain, prelude: string): CrossDiffer {
  let tmp: DirectoryResult;
  let n = 0;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });
  const objects = async (orig: string, patched: string, flags: readonly string[] = tc.flags): Promise<[ElfObject, ElfObject]> => {
    const k = n++;
    const [a, b] = await Promise.all([
      compileCross(tc, tmp.path, `orig${k}`, prelude + orig, flags),
      compileCross(tc, tmp.path, `patched${k}`, prelude + patched, flags),
    ]);
    return Promise.all([readElfFile(a), readElfFile(b)]);
  };
  return {
    objects,
    async diff(orig, patched, flags: readonly string[] = tc.flags) {
      const [a, b] = await objects(orig, patched, flags);
      return diffObjects(a, b, { compilerFlags: flags.join(' '), output: true });
    },
  };
}
