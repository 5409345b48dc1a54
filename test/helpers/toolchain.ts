import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Compiles C with the host gcc into `dir`; returns the object's path. */
export async function compileC(dir: string, name: string, source: string, flags: string[] = []): Promise<string> {
  const src = path.join(dir, `${name}.c`);
  const obj = path.join(dir, `${name}.o`);
  await writeFile(src, source);
  await execa('gcc', ['-c', '-O2', ...flags, '-o', obj, src]);
  return obj;
}

/** Assembles with `as` (or a cross assembler, e.g. `aarch64-linux-gnu-as`). */
export async function assemble(dir: string, name: string, source: string, assembler = 'as', flags: string[] = []): Promise<string> {
  const src = path.join(dir, `${name}.s`);
  const obj = path.join(dir, `${name}.o`);
  await writeFile(src, source);
  await execa(assembler, [...flags, '-o', obj, src]);
  return obj;
}

/** `ld -r` must accept an object we wrote: the linker is pickier than readelf. */
export async function linkRelocatable(dir: string, input: string, ld = 'ld'): Promise<void> {
  await execa(ld, ['-r', '-o', path.join(dir, `${path.basename(input)}.ld-r.o`), input]);
}

/** Deterministic PRNG (mulberry32) so fuzz failures reproduce from their seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
