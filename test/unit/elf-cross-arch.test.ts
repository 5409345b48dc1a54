import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { readElfFile, writeElfFile, EM, type ElfObject } from '../../src/elf/index.js';
import { firstDifference, readelfNormalized } from '../helpers/readelf.js';
import { assemble, linkRelocatable } from '../helpers/toolchain.js';

// The other livepatch architectures: class, byte order and machine are read from the file, never assumed.
const COMMON = `
  .section .data.ptrs,"aw",%progbits
  .balign 8
  .globl ptrs
ptrs: .quad callee + 16
  .quad counter - 8
  .section .bss.counter,"aw",%nobits
  .balign 8
counter: .zero 8
  .section .text.grp,"axG",%progbits,grp_sig,comdat
  .globl grp_sig
grp_sig: .byte 0
`;

const ARCHES = [
  {
    name: 'aarch64',
    prefix: 'aarch64-linux-gnu-',
    machine: EM.AARCH64,
    endian: 'little',
    text: `  .section .text.caller,"ax",%progbits
  .globl caller
  .type caller,%function
caller:
  bl callee
  adrp x0, counter
  add x0, x0, :lo12:counter
  ret
  .size caller,.-caller
`,
  },
  {
    name: 'ppc64le',
    prefix: 'powerpc64le-linux-gnu-',
    machine: EM.PPC64,
    endian: 'little',
    text: `  .abiversion 2
  .section .text.caller,"ax",%progbits
  .globl caller
  .type caller,%function
caller:
  bl callee
  nop
  addis 3,2,counter@toc@ha
  addi 3,3,counter@toc@l
  blr
  .size caller,.-caller
`,
  },
  {
    name: 's390x',
    prefix: 's390x-linux-gnu-',
    machine: EM.S390,
    endian: 'big',
    text: `  .section .text.caller,"ax",%progbits
  .globl caller
  .type caller,%function
caller:
  brasl %r14,callee@PLT
  larl %r1,counter
  br %r14
  .size caller,.-caller
`,
  },
] as const;

/** readelf's view of the symbols and relocations, as tuples to compare with the model's. */
async function readelfTables(file: string): Promise<{ symbols: string[]; relocs: string[] }> {
  const { stdout } = await execa('readelf', ['-sW', '-rW', file]);
  const symbols: string[] = [];
  const relocs: string[] = [];
  for (const line of stdout.split('\n')) {
    const s = /^\s*\d+:\s+([0-9a-f]{16})\s+(\d+)\s+\S+\s+\S+\s+\S+\s+(\S+)\s*(\S*)$/.exec(line);
    if (s) symbols.push(`${BigInt(`0x${s[1]}`)} ${s[2]} ${s[3]} ${s[4]}`);
    const r = /^([0-9a-f]{16})\s+([0-9a-f]{16})\s+\S+(?:\s+[0-9a-f]{16}\s+(\S+))?\s*([+-]\s*[0-9a-f]+)?$/.exec(line);
    if (r) relocs.push(`${BigInt(`0x${r[1]}`)} ${BigInt(`0x${r[2]}`)} ${(r[4] ?? '+ 0').replace(/\s+/g, '')}`);
  }
  return { symbols, relocs };
}

function modelTables(obj: ElfObject): { symbols: string[]; relocs: string[] } {
  const ndx = (reserved: number, shndx: number) =>
    reserved === 0xfff1 ? 'ABS' : reserved === 0xfff2 ? 'COM' : reserved ? String(reserved) : shndx === 0 ? 'UND' : String(shndx);
  const symbols = obj.symbols.map((s) => `${s.value} ${s.size} ${ndx(s.reserved, s.shndx)} ${obj.displayName(s)}`);
  const relocs: string[] = [];
  for (const s of obj.sections) {
    if (s.body.kind !== 'relocations') continue;
    for (const r of s.body.table) {
      const sign = r.addend < 0n ? '-' : '+';
      const abs = r.addend < 0n ? -r.addend : r.addend;
      relocs.push(`${r.offset} ${(BigInt(r.symbol) << 32n) | BigInt(r.type)} ${sign}${abs.toString(16)}`);
    }
  }
  return { symbols, relocs };
}

describe.each(ARCHES)('$name objects', (arch) => {
  let tmp: DirectoryResult;
  let obj: string;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    obj = await assemble(tmp.path, arch.name, arch.text + COMMON, `${arch.prefix}as`);
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('read with the right byte order and machine, and the same symbols and relocations readelf sees', async () => {
    const model = await readElfFile(obj);
    expect(model.ident.machine).toBe(arch.machine);
    expect(model.ident.endian).toBe(arch.endian);
    const ours = modelTables(model);
    const theirs = await readelfTables(obj);
    expect(ours.symbols).toEqual(theirs.symbols);
    expect(ours.relocs).toEqual(theirs.relocs);
    expect(ours.relocs.length).toBeGreaterThanOrEqual(3);
  });

  it('rewrites to an object that readelf shows identically and that ld -r accepts', async () => {
    const model = await readElfFile(obj);
    const out = `${obj}.rewritten.o`;
    await writeElfFile(out, model);
    expect(firstDifference(await readelfNormalized(obj), await readelfNormalized(out))).toBeUndefined();
    await linkRelocatable(tmp.path, out, `${arch.prefix}ld`);
  });
});
