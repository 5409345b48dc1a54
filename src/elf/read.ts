import { readFile } from 'node:fs/promises';
import { ByteReader } from './bytes.js';
import {
  EHDR64_SIZE,
  ELF_MAGIC,
  ELFCLASS32,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  EV_CURRENT,
  REL64_SIZE,
  RELA64_SIZE,
  type SectionIndex,
  SHDR64_SIZE,
  SHN,
  SHT,
  SYM64_SIZE,
} from './constants.js';
import { ElfError, hex } from './errors.js';
import { ElfObject, type ElfIdent, type ProgramHeaders, type Section, type SectionBody } from './model.js';
import { decodeRelocations } from './relocations.js';
import { StringTable } from './strtab.js';
import { decodeSymbols } from './symtab.js';

/** A section header as stored, before its body is decoded. */
export interface RawHeader {
  nameOffset: number;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: bigint;
  size: bigint;
  link: number;
  info: number;
  addralign: bigint;
  entsize: bigint;
}

export async function readElfFile(path: string): Promise<ElfObject> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new ElfError('ELF_NOT_ELF', path, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseElf(buf, path);
}

/** The ELF header and section header table, checked; nothing else decoded. */
export interface ElfHeaders {
  r: ByteReader;
  ident: ElfIdent;
  programHeaders: ProgramHeaders | undefined;
  raws: RawHeader[];
  shstrndx: number;
}

/** Checks the identification and reads the header tables: shared by parseElf and ElfPeek. */
export function parseHeaders(buf: Buffer, file: string): ElfHeaders {
  if (buf.length < 4 || !buf.subarray(0, 4).equals(ELF_MAGIC)) {
    throw new ElfError('ELF_NOT_ELF', file, 'not an ELF file (no \\x7fELF magic at the start)');
  }
  if (buf.length < 16) throw new ElfError('ELF_TRUNCATED', file, `truncated ELF identification (${buf.length} bytes)`);
  const cls = buf[4]!;
  if (cls === ELFCLASS32)
    throw new ElfError('ELF_UNSUPPORTED', file, '32-bit ELF (ELFCLASS32) is not supported; klpforge reads ELF64 objects');
  if (cls !== ELFCLASS64) throw new ElfError('ELF_MALFORMED', file, `invalid ELF class ${cls} (expected 2, ELFCLASS64)`);
  const data = buf[5]!;
  if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) throw new ElfError('ELF_MALFORMED', file, `invalid ELF data encoding ${data}`);
  if (buf[6] !== EV_CURRENT) throw new ElfError('ELF_MALFORMED', file, `unknown ELF identification version ${buf[6]}`);
  if (buf.length < EHDR64_SIZE) throw new ElfError('ELF_TRUNCATED', file, `truncated ELF header (${buf.length} of ${EHDR64_SIZE} bytes)`);

  const r = new ByteReader(buf, data === ELFDATA2LSB, file);
  const ident: ElfIdent = {
    endian: r.little ? 'little' : 'big',
    osabi: buf[7]!,
    abiVersion: buf[8]!,
    type: r.u16(16),
    machine: r.u16(18),
    version: r.u32(20),
    entry: r.u64(24),
    flags: r.u32(48),
  };
  const phoff = r.u64(32);
  const shoff = r.u64(40);
  const phentsize = r.u16(54);
  const phnum = r.u16(56);
  const shentsize = r.u16(58);
  let shnum = BigInt(r.u16(60));
  let shstrndx = r.u16(62);

  let programHeaders: ProgramHeaders | undefined;
  if (phnum > 0) {
    const at = r.require(phoff, phnum * phentsize, `program header table (${phnum} entries)`);
    programHeaders = { offset: phoff, entrySize: phentsize, count: phnum, bytes: buf.subarray(at, at + phnum * phentsize) };
  }

  const raws: RawHeader[] = [];
  if (shoff !== 0n) {
    if (shentsize !== SHDR64_SIZE) {
      throw new ElfError('ELF_MALFORMED', file, `section header entry size is ${shentsize}, expected ${SHDR64_SIZE}`);
    }
    const first = readHeader(r, r.require(shoff, SHDR64_SIZE, 'section header 0'));
    // More than SHN_LORESERVE sections: the real count and e_shstrndx live in section 0.
    if (shnum === 0n) shnum = first.size;
    if (shstrndx === SHN.XINDEX) shstrndx = first.link;
    const at = r.require(shoff, shnum * BigInt(SHDR64_SIZE), `section header table (${shnum} entries)`);
    for (let i = 0; i < Number(shnum); i++) raws.push(readHeader(r, at + i * SHDR64_SIZE));
  }
  const count = raws.length;
  if (count > 0 && (shstrndx >= count || raws[shstrndx]!.type !== SHT.STRTAB)) {
    throw new ElfError('ELF_MALFORMED', file, `section name string table index ${shstrndx} is not a string table (${count} sections)`);
  }

  return { r, ident, programHeaders, raws, shstrndx };
}

/**
 * Parses an ELF64 file of any machine and byte order. Section bytes are views
 * into `buf` (no copy), so keep `buf` unchanged while the model lives.
 * Every inconsistency is an ElfError naming `file` and the structure.
 */
export function parseElf(buf: Buffer, file: string): ElfObject {
  const { r, ident, programHeaders, raws, shstrndx } = parseHeaders(buf, file);
  const count = raws.length;
  const ctx = new DecodeContext(r, raws);
  const names = count > 0 ? ctx.strings(shstrndx) : new StringTable();
  const sections: Section[] = raws.map((h, i) => {
    const name = names.get(h.nameOffset);
    if (name === undefined) {
      throw new ElfError(
        'ELF_MALFORMED',
        file,
        `section ${i}: name offset ${hex(h.nameOffset)} outside the section name table (size ${hex(names.size)})`,
      );
    }
    ctx.names[i] = name;
    return {
      name,
      nameOffset: h.nameOffset,
      type: h.type,
      flags: h.flags,
      addr: h.addr,
      addralign: h.addralign,
      entsize: h.entsize,
      link: h.link,
      info: h.info,
      fileOffset: h.offset,
      body: { kind: 'bytes', data: Buffer.alloc(0) },
    };
  });
  sections.forEach((s, i) => {
    s.body = ctx.body(i);
  });
  return new ElfObject(ident, sections, shstrndx as SectionIndex, programHeaders);
}

function readHeader(r: ByteReader, o: number): RawHeader {
  return {
    nameOffset: r.u32(o),
    type: r.u32(o + 4),
    flags: r.u64(o + 8),
    addr: r.u64(o + 16),
    offset: r.u64(o + 24),
    size: r.u64(o + 32),
    link: r.u32(o + 40),
    info: r.u32(o + 44),
    addralign: r.u64(o + 48),
    entsize: r.u64(o + 56),
  };
}

/** Decodes section bodies; string and symbol tables are decoded once and shared. */
class DecodeContext {
  readonly names: string[] = [];
  private stringTables = new Map<number, StringTable>();
  private symbolCounts = new Map<number, number>();
  /** symbol table index → its SYMTAB_SHNDX section index */
  private shndxFor = new Map<number, number>();

  constructor(
    private r: ByteReader,
    private raws: RawHeader[],
  ) {
    raws.forEach((h, i) => {
      if (h.type === SHT.SYMTAB_SHNDX) this.shndxFor.set(h.link, i);
    });
  }

  private where(i: number): string {
    return `section ${i} (${this.names[i] ?? '?'})`;
  }

  private fail(i: number, detail: string): never {
    throw new ElfError('ELF_MALFORMED', this.r.file, `${this.where(i)}: ${detail}`);
  }

  private bytesOf(i: number): Buffer {
    const h = this.raws[i]!;
    const at = this.r.require(h.offset, h.size, `${this.where(i)} contents`);
    return this.r.buf.subarray(at, at + Number(h.size));
  }

  private linked(i: number, types: readonly number[], what: string): number {
    const link = this.raws[i]!.link;
    if (link === 0 || link >= this.raws.length || !types.includes(this.raws[link]!.type)) {
      this.fail(i, `sh_link ${link} does not name a ${what}`);
    }
    return link;
  }

  strings(i: number): StringTable {
    const cached = this.stringTables.get(i);
    if (cached) return cached;
    const data = this.bytesOf(i);
    if (data.length > 0 && data[data.length - 1] !== 0) this.fail(i, 'string table does not end with a NUL terminator');
    const table = new StringTable(data);
    this.stringTables.set(i, table);
    return table;
  }

  /** Entry count of a table section, checking its entry size. */
  private entries(i: number, entsize: number, what: string): number {
    const h = this.raws[i]!;
    if (h.entsize !== BigInt(entsize)) this.fail(i, `${what} entry size is ${h.entsize}, expected ${entsize}`);
    if (h.size % BigInt(entsize) !== 0n) this.fail(i, `${what} size ${hex(h.size)} is not a multiple of ${entsize}`);
    return Number(h.size / BigInt(entsize));
  }

  symbolCount(i: number): number {
    let n = this.symbolCounts.get(i);
    if (n === undefined) {
      n = this.entries(i, SYM64_SIZE, 'symbol table');
      this.symbolCounts.set(i, n);
    }
    return n;
  }

  body(i: number): SectionBody {
    const h = this.raws[i]!;
    if (h.addralign !== 0n && (h.addralign & (h.addralign - 1n)) !== 0n) {
      this.fail(i, `alignment ${h.addralign} is not a power of two`);
    }
    switch (h.type) {
      case SHT.NULL:
        return { kind: 'bytes', data: Buffer.alloc(0) };
      case SHT.NOBITS:
        return { kind: 'nobits', size: h.size };
      case SHT.STRTAB:
        return { kind: 'strtab', table: this.strings(i) };
      case SHT.SYMTAB:
        return { kind: 'symtab', symbols: this.symbols(i) };
      case SHT.RELA:
      case SHT.REL:
        return { kind: 'relocations', table: this.relocations(i, h.type === SHT.RELA) };
      case SHT.GROUP:
        return this.group(i);
      case SHT.SYMTAB_SHNDX: {
        const symtab = this.linked(i, [SHT.SYMTAB], 'symbol table');
        if (h.size !== BigInt(this.symbolCount(symtab) * 4))
          this.fail(i, `size ${hex(h.size)} does not match its symbol table's ${this.symbolCount(symtab)} symbols`);
        this.bytesOf(i);
        return { kind: 'shndx' };
      }
      default:
        return { kind: 'bytes', data: this.bytesOf(i) };
    }
  }

  private symbols(i: number) {
    const strtab = this.strings(this.linked(i, [SHT.STRTAB], 'string table'));
    const count = this.symbolCount(i);
    const at = this.r.require(this.raws[i]!.offset, count * SYM64_SIZE, `${this.where(i)} contents`);
    const x = this.shndxFor.get(i);
    let shndx: { reader: ByteReader; offset: number } | undefined;
    if (x !== undefined) {
      const h = this.raws[x]!;
      if (h.size !== BigInt(count * 4)) this.fail(x, `size ${hex(h.size)} does not match its symbol table's ${count} symbols`);
      shndx = { reader: this.r, offset: this.r.require(h.offset, h.size, `${this.where(x)} contents`) };
    }
    return decodeSymbols(this.r, at, count, strtab, this.raws.length, shndx, this.where(i));
  }

  private relocations(i: number, withAddend: boolean) {
    const h = this.raws[i]!;
    const symtab = this.linked(i, [SHT.SYMTAB, SHT.DYNSYM], 'symbol table');
    if (h.info >= this.raws.length) this.fail(i, `applies to section ${h.info}, but the object has ${this.raws.length} sections`);
    const count = this.entries(i, withAddend ? RELA64_SIZE : REL64_SIZE, 'relocation');
    const at = this.r.require(h.offset, h.size, `${this.where(i)} contents`);
    return decodeRelocations(this.r, at, count, withAddend, this.symbolCount(symtab), this.where(i));
  }

  private group(i: number): SectionBody {
    const h = this.raws[i]!;
    const symtab = this.linked(i, [SHT.SYMTAB], 'symbol table');
    if (h.size < 4n || h.size % 4n !== 0n) this.fail(i, `group size ${hex(h.size)} is not a positive multiple of 4`);
    if (h.info >= this.symbolCount(symtab)) this.fail(i, `group signature symbol ${h.info} is out of range`);
    const at = this.r.require(h.offset, h.size, `${this.where(i)} contents`);
    const members: SectionIndex[] = [];
    for (let o = at + 4; o < at + Number(h.size); o += 4) {
      const m = this.r.u32(o);
      if (m === 0 || m >= this.raws.length) this.fail(i, `group member ${m} is not a section (${this.raws.length} sections)`);
      members.push(m as SectionIndex);
    }
    return { kind: 'group', flags: this.r.u32(at), members };
  }
}
