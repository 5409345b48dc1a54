import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { ElfError, parseElf, SHT, type ElfObject } from '../../src/elf/index.js';
import { REPO_ROOT } from '../helpers/kernel.js';
import { compileC } from '../helpers/toolchain.js';

const SOURCE = `
static int helper(int x) { static int calls; return x + ++calls; }
int api(int x) { return helper(x) * 2; }
const char *name(void) { return "a string"; }
`;

interface Layout {
  buf: Buffer;
  model: ElfObject;
  shoff: number;
}
type Mutation = (l: Layout) => Buffer;

const shdr = (l: Layout, index: number) => l.shoff + index * 64;
const sectionIndex = (l: Layout, pred: (type: number, name: string) => boolean) => l.model.sections.findIndex((s) => pred(s.type, s.name));
const copy = (l: Layout) => Buffer.from(l.buf);
function patch(l: Layout, edit: (b: Buffer) => void): Buffer {
  const b = copy(l);
  edit(b);
  return b;
}

/** Each kind of damage, the error code it must give and words the message must contain. */
const CASES: Array<[string, Mutation, string, RegExp]> = [
  ['an empty file', () => Buffer.alloc(0), 'ELF_NOT_ELF', /not an ELF file/],
  ['text, not ELF', () => Buffer.from('int main(void) { return 0; }\n'), 'ELF_NOT_ELF', /not an ELF file/],
  ['only the magic', (l) => l.buf.subarray(0, 6), 'ELF_TRUNCATED', /identification/],
  ['a truncated header', (l) => l.buf.subarray(0, 40), 'ELF_TRUNCATED', /ELF header/],
  ['a file cut in half', (l) => l.buf.subarray(0, l.buf.length >> 1), 'ELF_TRUNCATED', /past the end of the file/],
  [
    'a 32-bit object',
    (l) =>
      patch(l, (b) => {
        b[4] = 1;
      }),
    'ELF_UNSUPPORTED',
    /ELFCLASS32/,
  ],
  [
    'an invalid class',
    (l) =>
      patch(l, (b) => {
        b[4] = 9;
      }),
    'ELF_MALFORMED',
    /invalid ELF class 9/,
  ],
  [
    'an invalid byte order',
    (l) =>
      patch(l, (b) => {
        b[5] = 3;
      }),
    'ELF_MALFORMED',
    /data encoding/,
  ],
  ['a section header table past the end', (l) => patch(l, (b) => b.writeBigUInt64LE(0xffffffff00n, 40)), 'ELF_TRUNCATED', /section header/],
  ['a wrong section header size', (l) => patch(l, (b) => b.writeUInt16LE(40, 58)), 'ELF_MALFORMED', /entry size is 40/],
  ['a name table index out of range', (l) => patch(l, (b) => b.writeUInt16LE(999, 62)), 'ELF_MALFORMED', /string table index 999/],
  [
    'a section whose data lies past the end',
    (l) =>
      patch(l, (b) => {
        b.writeBigUInt64LE(
          BigInt(l.buf.length),
          shdr(
            l,
            sectionIndex(l, (_t, n) => n === '.text.api'),
          ) + 24,
        );
      }),
    'ELF_TRUNCATED',
    /\.text\.api/,
  ],
  [
    'a string table without a terminator',
    (l) =>
      patch(l, (b) => {
        const i = sectionIndex(l, (_t, n) => n === '.strtab');
        const h = shdr(l, i);
        b[Number(b.readBigUInt64LE(h + 24) + b.readBigUInt64LE(h + 32)) - 1] = 0x41;
      }),
    'ELF_MALFORMED',
    /NUL terminator/,
  ],
  [
    'a symbol name outside its string table',
    (l) =>
      patch(l, (b) => {
        const h = shdr(
          l,
          sectionIndex(l, (t) => t === SHT.SYMTAB),
        );
        b.writeUInt32LE(0x7fffffff, Number(b.readBigUInt64LE(h + 24)) + 24);
      }),
    'ELF_MALFORMED',
    /name offset 0x7fffffff/,
  ],
  [
    'a symbol in a section that does not exist',
    (l) =>
      patch(l, (b) => {
        const h = shdr(
          l,
          sectionIndex(l, (t) => t === SHT.SYMTAB),
        );
        b.writeUInt16LE(0xfe00, Number(b.readBigUInt64LE(h + 24)) + 24 * 2 + 6);
      }),
    'ELF_MALFORMED',
    /is in section 65024/,
  ],
  [
    'a symbol table with a bad entry size',
    (l) =>
      patch(l, (b) => {
        b.writeBigUInt64LE(
          16n,
          shdr(
            l,
            sectionIndex(l, (t) => t === SHT.SYMTAB),
          ) + 56,
        );
      }),
    'ELF_MALFORMED',
    /entry size is 16, expected 24/,
  ],
  [
    'a relocation naming a symbol that does not exist',
    (l) =>
      patch(l, (b) => {
        const h = shdr(
          l,
          sectionIndex(l, (t) => t === SHT.RELA),
        );
        const at = Number(b.readBigUInt64LE(h + 24));
        b.writeUInt32LE(0x123456, at + 12);
      }),
    'ELF_MALFORMED',
    /refers to symbol 1193046/,
  ],
  [
    'a relocation section for a section that does not exist',
    (l) =>
      patch(l, (b) => {
        b.writeUInt32LE(
          5000,
          shdr(
            l,
            sectionIndex(l, (t) => t === SHT.RELA),
          ) + 44,
        );
      }),
    'ELF_MALFORMED',
    /applies to section 5000/,
  ],
  [
    'a relocation section not linked to a symbol table',
    (l) =>
      patch(l, (b) => {
        b.writeUInt32LE(
          1,
          shdr(
            l,
            sectionIndex(l, (t) => t === SHT.RELA),
          ) + 40,
        );
      }),
    'ELF_MALFORMED',
    /sh_link 1 does not name a symbol table/,
  ],
  [
    'an alignment that is not a power of two',
    (l) =>
      patch(l, (b) => {
        b.writeBigUInt64LE(
          3n,
          shdr(
            l,
            sectionIndex(l, (_t, n) => n === '.text.api'),
          ) + 48,
        );
      }),
    'ELF_MALFORMED',
    /alignment 3/,
  ],
  [
    'an escaped section count of 2^40 (no hang, no huge allocation)',
    (l) =>
      patch(l, (b) => {
        b.writeUInt16LE(0, 60);
        b.writeBigUInt64LE(1n << 40n, l.shoff + 32);
      }),
    'ELF_TRUNCATED',
    /section header table \(1099511627776 entries\)/,
  ],
];

describe('bad input gives one clear error naming the file', () => {
  let tmp: DirectoryResult;
  let layout: Layout;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    const obj = await compileC(tmp.path, 'victim', SOURCE, ['-ffunction-sections', '-fdata-sections']);
    const buf = await readFile(obj);
    layout = { buf, model: parseElf(buf, obj), shoff: Number(buf.readBigUInt64LE(40)) };
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it.each(CASES)('%s', (_label, mutate, code, words) => {
    const file = 'damaged/victim.o';
    let error: unknown;
    try {
      parseElf(mutate(layout), file);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ElfError);
    const e = error as ElfError;
    expect(e.code).toBe(code);
    expect(e.message.startsWith(`${file}: `)).toBe(true);
    expect(e.message).toMatch(words);
    expect(e.message).not.toContain('\n');
  });

  it('the CLI prints the error as one line and exits 1', async () => {
    const bad = path.join(tmp.path, 'cut.o');
    await writeFile(bad, layout.buf.subarray(0, 200));
    const r = await execa('node', [path.join(REPO_ROOT, 'bin/klpforge.js'), 'elf', bad], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^klpforge: ${bad}: .*past the end of the file`))]);
  }, 60_000);

  it('a missing file is one line too', async () => {
    const r = await execa('node', [path.join(REPO_ROOT, 'bin/klpforge.js'), 'elf', path.join(tmp.path, 'nope.o')], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toMatch(/^klpforge: \S+nope\.o: cannot read: ENOENT$/);
  }, 30_000);
});
