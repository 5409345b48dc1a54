import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import {
  ElfPeek,
  parseElf,
  readElfFile,
  serializeElf,
  writeElfFile,
  SHF,
  SHN,
  SHT,
  STB,
  STT,
  type ElfSymbol,
  type SectionIndex,
} from '../../src/elf/index.js';
import { modelDifference } from '../helpers/model.js';
import { firstDifference, readelfNormalized } from '../helpers/readelf.js';
import { assemble, compileC, linkRelocatable } from '../helpers/toolchain.js';

// Just past SHN_LORESERVE (65,280): e_shnum, e_shstrndx and st_shndx all need their escapes.
const FUNCTIONS = 32_700;

function manySectionsAsm(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    parts.push(
      `.section .text.f${i},"ax",@progbits\n.globl f${i}\n.type f${i},@function\nf${i}: call f${(i + 1) % n}\n ret\n.size f${i},.-f${i}\n`,
    );
  }
  return parts.join('');
}

describe('objects with more than 65,279 sections (SHN_XINDEX)', () => {
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('reads the real section count, name table and symbol sections from the escapes gas writes, and writes them back', async () => {
    const obj = await assemble(tmp.path, 'many', manySectionsAsm(FUNCTIONS));
    const model = await readElfFile(obj);
    expect(model.sections.length).toBeGreaterThan(SHN.LORESERVE);
    expect(model.sections[model.shstrndx]!.name).toBe('.shstrtab');
    expect(model.sections.some((s) => s.type === SHT.SYMTAB_SHNDX)).toBe(true);
    const last = model.symbol(model.symbolsNamed(`f${FUNCTIONS - 1}`)[0]!);
    expect(last.shndx).toBeGreaterThan(SHN.LORESERVE);
    expect(model.symbolSection(last)?.name).toBe(`.text.f${FUNCTIONS - 1}`);
    // The peek reader resolves the escaped index the same way.
    const peek = ElfPeek.of(await readFile(obj), obj);
    expect(peek.sections).toHaveLength(model.sections.length);
    expect(peek.symbolsNamed(`f${FUNCTIONS - 1}`).map((s) => s.shndx)).toEqual([last.shndx]);
    expect(peek.sections[last.shndx]!.name).toBe(`.text.f${FUNCTIONS - 1}`);

    const out = `${obj}.rewritten.o`;
    await writeElfFile(out, model);
    expect(firstDifference(await readelfNormalized(obj), await readelfNormalized(out))).toBeUndefined();
    expect(modelDifference(model, parseElf(await readFile(out), out))).toBeUndefined();
    await linkRelocatable(tmp.path, out);
  }, 120_000);

  it('adds a .symtab_shndx when a model grows past the limit without one', async () => {
    const obj = await compileC(tmp.path, 'small', 'int g(int x) { return x + 1; }\n', ['-ffunction-sections']);
    const model = await readElfFile(obj);
    expect(model.sections.some((s) => s.type === SHT.SYMTAB_SHNDX)).toBe(false);
    const symbols = model.symbols;
    const firstGlobal = symbols.findIndex((s) => s.bind !== STB.LOCAL);
    const added: ElfSymbol[] = [];
    for (let i = 0; i < 66_000; i++) {
      const index = model.sections.length as SectionIndex;
      model.sections.push({
        name: `.rodata.item${i}`,
        type: SHT.PROGBITS,
        flags: SHF.ALLOC,
        addr: 0n,
        addralign: 1n,
        entsize: 0n,
        link: 0,
        info: 0,
        body: { kind: 'bytes', data: Buffer.from([i & 0xff]) },
      });
      added.push({ name: `item${i}`, value: 0n, size: 1n, bind: STB.GLOBAL, type: STT.OBJECT, other: 0, shndx: index, reserved: 0 });
    }
    symbols.push(...added);
    model.reindex();
    expect(firstGlobal).toBeGreaterThan(0);

    const out = path.join(tmp.path, 'grown.o');
    await writeElfFile(out, model);
    const back = await readElfFile(out);
    expect(back.sections.at(-1)!.type).toBe(SHT.SYMTAB_SHNDX);
    const item = back.symbol(back.symbolsNamed('item65999')[0]!);
    expect(back.symbolSection(item)?.name).toBe('.rodata.item65999');
    await readelfNormalized(out);
    await linkRelocatable(tmp.path, out);
    // The escape is stable: writing the read-back model again changes nothing.
    expect(serializeElf(back).equals(await readFile(out))).toBe(true);
  }, 120_000);
});
