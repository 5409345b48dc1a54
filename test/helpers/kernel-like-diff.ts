import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import { type ElfObject, readElfFile } from '../../src/elf/index.js';
import { compileC } from './toolchain.js';

/** Compiled as the kernel compiles: function/data sections, ftrace entries, kernel code model. */
export const KERNEL_FLAGS = [
  '-O2',
  '-ffunction-sections',
  '-fdata-sections',
  '-pg',
  '-mfentry',
  '-mrecord-mcount',
  '-fno-PIE',
  '-mcmodel=kernel',
  '-mno-red-zone',
  '-fno-asynchronous-unwind-tables',
];

/**
 * A differ on C compiled here: `diff(orig, patched)` compiles both with the
 * prelude in front and diffs the objects. Call at a describe block's top level.
 */
export function kernelLikeDiffer(prelude: string): {
  /** Both builds, parsed. */
  objects: (orig: string, patched: string, flags?: string[]) => Promise<[ElfObject, ElfObject]>;
  diff: (orig: string, patched: string, flags?: string[]) => Promise<DiffResult>;
} {
  let tmp: DirectoryResult;
  let n = 0;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });
  const objects = async (orig: string, patched: string, flags = KERNEL_FLAGS): Promise<[ElfObject, ElfObject]> => {
    const k = n++;
    const [a, b] = await Promise.all([
      compileC(tmp.path, `orig${k}`, prelude + orig, flags),
      compileC(tmp.path, `patched${k}`, prelude + patched, flags),
    ]);
    return Promise.all([readElfFile(a), readElfFile(b)]);
  };
  return {
    objects,
    async diff(orig, patched, flags = KERNEL_FLAGS) {
      const [a, b] = await objects(orig, patched, flags);
      return diffObjects(a, b, { compilerFlags: flags.join(' ') });
    },
  };
}

export const changedAndNew = (r: DiffResult) => ({ changed: r.changed.map((f) => f.name), new: r.new.map((f) => f.name) });
export const refusalCodes = (r: DiffResult) => r.refusals.map((x) => x.code);
