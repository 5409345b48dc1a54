import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { ElfError, ElfPeek, parseElf, SHT } from '../../src/elf/index.js';
import { compileC } from '../helpers/toolchain.js';

const SOURCE = `
static int counter(void) { static int calls; return ++calls; }
static int other(void) { static int calls; return calls += 2; }
int api(int x) { return counter() + other() + x; }
const char banner[] = "Linux version 6.1.0-test (gcc) #1";
int big[1024];
`;

describe('ElfPeek: section headers and chosen symbols without a full parse', () => {
  let tmp: DirectoryResult;
  let objects: string[];
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    const obj = await compileC(tmp.path, 'peek', SOURCE, ['-O2', '-ffunction-sections', '-fdata-sections']);
    const linked = path.join(tmp.path, 'peek.elf');
    await execa('ld', ['-e', 'api', '-o', linked, obj]);
    objects = [obj, linked];
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  test('every section has the name, type, address and bytes the full parse gives (relocatable and linked files)', async () => {
    for (const file of objects) {
      const buf = await readFile(file);
      const full = parseElf(buf, file);
      const peek = ElfPeek.of(buf, file);
      expect(peek.sections.map((s) => [s.name, s.type, s.addr])).toEqual(full.sections.map((s) => [s.name, s.type, s.addr]));
      for (const [i, s] of full.sections.entries()) {
        if (s.type === SHT.PROGBITS)
          expect(peek.sections[i]!.data.equals(s.body.kind === 'bytes' ? s.body.data : Buffer.alloc(1))).toBe(true);
        if (s.type === SHT.NOBITS) expect(peek.sections[i]!.data).toHaveLength(0);
      }
      expect(peek.section('.comment')?.index).toBe(full.findSection('.comment'));
    }
  });

  test('symbolsNamed finds exactly the symbols of that name the full parse has, with value, size, type and section', async () => {
    for (const file of objects) {
      const buf = await readFile(file);
      const full = parseElf(buf, file);
      const peek = ElfPeek.of(buf, file);
      const names = new Set(full.symbols.map((s) => s.name).filter((n) => n !== ''));
      expect(names.size).toBeGreaterThan(5);
      for (const name of names) {
        const want = full
          .symbolsNamed(name)
          .map((i) => full.symbol(i))
          .map((s) => ({ name, value: s.value, size: s.size, type: s.type, shndx: s.shndx, reserved: s.reserved }));
        expect(peek.symbolsNamed(name)).toEqual(want);
      }
      expect(peek.symbolsNamed('calls')).toEqual([]); // a prefix of calls.0 is not a match
      expect(peek.symbolsNamed('no_such_symbol')).toEqual([]);
    }
  });

  test("bad files get the full parser's errors: not ELF, truncated section headers, a section past the end", async () => {
    const good = await readFile(objects[0]!);
    const codeOf = (buf: Buffer) => {
      try {
        ElfPeek.of(buf, 'x.o');
        return 'ok';
      } catch (e) {
        return (e as ElfError).code;
      }
    };
    expect(codeOf(Buffer.from('MZ not an elf'))).toBe('ELF_NOT_ELF');
    expect(codeOf(good.subarray(0, good.length - 64))).toBe('ELF_TRUNCATED'); // the section header table is at the end
    const moved = Buffer.from(good);
    const shoff = Number(moved.readBigUInt64LE(40));
    const text = parseElf(good, 'x.o').findSection('.comment')!;
    moved.writeBigUInt64LE(BigInt(good.length), shoff + text * 64 + 24); // sh_offset past the end
    expect(codeOf(moved)).toBe('ELF_TRUNCATED');
    await expect(ElfPeek.read(path.join(tmp.path, 'missing'))).rejects.toThrow(ElfError);
  });
});
