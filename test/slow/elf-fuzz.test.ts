import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ElfError, parseElf, serializeElf } from '../../src/elf/index.js';
import { fixtureKernel } from '../helpers/kernel.js';
import { kernelObjects } from '../helpers/kernel-objects.js';
import { prng } from '../helpers/toolchain.js';

// Reproduce a failure with KLPFORGE_FUZZ_SEED=<seed printed> npm run test:slow -- elf-fuzz
const SEED = Number(process.env.KLPFORGE_FUZZ_SEED ?? 0x6b6c70);
const CASES = Number(process.env.KLPFORGE_FUZZ_CASES ?? 12_000);
const EXTREMES = [0n, 1n, 0x7fn, 0xffn, 0xff00n, 0xffffn, 0x7fffffffn, 0xffffffffn, 1n << 32n, 1n << 63n, (1n << 64n) - 1n];

/**
 * Mutated real kernel objects: the parser either returns a model or throws an
 * ElfError, never anything else and never hangs; a model it returns can be
 * written, and what is written parses again.
 */
describe('fuzzing the ELF reader with mutated kernel objects', () => {
  it(`${CASES} seeded mutations (seed ${SEED}) give a model or an ElfError, never a crash`, async () => {
    const kernel = fixtureKernel();
    const all = await kernelObjects(kernel.fsections);
    const small: string[] = [];
    for (const o of all) if ((await stat(o)).size < 48 * 1024 && small.length < 400) small.push(o);
    // A spread of object kinds: every 20th small object, by path order (stable across runs).
    const corpus = await Promise.all(small.filter((_o, i) => i % 20 === 0).map(async (o) => ({ file: o, buf: await readFile(o) })));
    expect(corpus.length).toBeGreaterThanOrEqual(10);

    const rand = prng(SEED);
    const pick = (n: number) => Math.floor(rand() * n);
    const outcomes = { parsed: 0, rejected: 0 };
    for (let c = 0; c < CASES; c++) {
      const { file, buf } = corpus[pick(corpus.length)]!;
      const { bytes, what } = mutate(buf, pick, rand);
      const label = `case ${c} (seed ${SEED}): ${what} of ${path.basename(file)}`;
      try {
        const model = parseElf(bytes, label);
        const written = serializeElf(model, label);
        parseElf(written, `${label}, rewritten`);
        outcomes.parsed++;
      } catch (e) {
        if (!(e instanceof ElfError)) throw new Error(`${label}: ${(e as Error).stack ?? String(e)}`);
        expect(e.message).not.toContain('\n');
        outcomes.rejected++;
      }
    }
    // Both paths must really be exercised, or the mutations are too weak or too strong.
    expect(outcomes.parsed).toBeGreaterThan(CASES / 20);
    expect(outcomes.rejected).toBeGreaterThan(CASES / 20);
  }, 600_000);
});

function mutate(buf: Buffer, pick: (n: number) => number, rand: () => number): { bytes: Buffer; what: string } {
  const b = Buffer.from(buf);
  const shoff = Number(b.readBigUInt64LE(40));
  const shnum = b.readUInt16LE(60);
  switch (pick(5)) {
    case 0: {
      // random bytes anywhere
      const n = 1 + pick(8);
      for (let i = 0; i < n; i++) b[pick(b.length)] = pick(256);
      return { bytes: b, what: `${n} random bytes` };
    }
    case 1: {
      // the ELF header
      const at = pick(64);
      b[at] = pick(256);
      return { bytes: b, what: `header byte ${at}` };
    }
    case 2: {
      // a section header field set to an extreme value
      const sec = pick(shnum);
      const field = [0, 4, 8, 16, 24, 32, 40, 44, 48, 56][pick(10)]!;
      const v = EXTREMES[pick(EXTREMES.length)]!;
      const at = shoff + sec * 64 + field;
      if (field === 0 || field === 4 || field === 40 || field === 44) b.writeUInt32LE(Number(v & 0xffffffffn), at);
      else b.writeBigUInt64LE(v & ((1n << 64n) - 1n), at);
      return { bytes: b, what: `section ${sec} field +${field} = ${v}` };
    }
    case 3: {
      // truncation
      const len = pick(b.length);
      return { bytes: b.subarray(0, len), what: `truncated to ${len}` };
    }
    default: {
      // a byte of a table (symbols, relocations, strings live past the section data)
      const start = Math.floor(b.length * 0.3);
      const at = start + pick(b.length - start);
      b[at] = rand() < 0.5 ? 0 : 0xff;
      return { bytes: b, what: `table byte ${at}` };
    }
  }
}
