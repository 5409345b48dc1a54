import { readFile } from 'node:fs/promises';
import { type SectionIndex, SHN, SHT, SYM64_SIZE } from './constants.js';
import { ElfError, hex } from './errors.js';
import { parseHeaders, type RawHeader } from './read.js';

export interface PeekedSection {
  index: SectionIndex;
  name: string;
  type: number;
  addr: bigint;
  link: number;
  /** The section's bytes in the file (empty for NOBITS): a view, not a copy. */
  data: Buffer;
}

export interface PeekedSymbol {
  name: string;
  value: bigint;
  size: bigint;
  /** STT_* */
  type: number;
  /** The section it is defined in; 0 when undefined or `reserved` is set (as in ElfSymbol). */
  shndx: number;
  /** A reserved st_shndx (SHN.ABS, SHN.COMMON…), or 0 for none. */
  reserved: number;
}

/**
 * An ELF file's section headers and, on request, single sections or symbols,
 * without decoding the rest: a few milliseconds for a vmlinux whose full
 * parse takes a quarter of a second (hundreds of MB with debug info). For
 * questions such as which compiler built it and which release it is. The
 * header checks are parseElf's, so a bad file gets the same ElfError.
 */
export class ElfPeek {
  readonly sections: readonly PeekedSection[];
  private readonly byName = new Map<string, PeekedSection>();

  private constructor(
    private readonly buf: Buffer,
    readonly file: string,
    private readonly little: boolean,
    raws: RawHeader[],
    shstrndx: number,
  ) {
    const names = raws.length > 0 ? this.slice(raws[shstrndx]!, 'section name string table') : Buffer.alloc(0);
    this.sections = raws.map((h, i) => {
      if (h.nameOffset >= Math.max(names.length, 1)) {
        throw new ElfError(
          'ELF_MALFORMED',
          file,
          `section ${i}: name offset ${hex(h.nameOffset)} outside the section name table (size ${hex(names.length)})`,
        );
      }
      const name = cString(names, h.nameOffset);
      const data = h.type === SHT.NOBITS ? Buffer.alloc(0) : this.slice(h, `section ${i} (${name})`);
      return { index: i as SectionIndex, name, type: h.type, addr: h.addr, link: h.link, data };
    });
    for (const s of this.sections) if (!this.byName.has(s.name)) this.byName.set(s.name, s);
  }

  static of(buf: Buffer, file: string): ElfPeek {
    const { r, raws, shstrndx } = parseHeaders(buf, file);
    return new ElfPeek(buf, file, r.little, raws, shstrndx);
  }

  /** Reads the whole file (a later full parse can use `bytes` rather than reading it again). */
  static async read(file: string): Promise<ElfPeek> {
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (e) {
      throw new ElfError('ELF_NOT_ELF', file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    return ElfPeek.of(buf, file);
  }

  get bytes(): Buffer {
    return this.buf;
  }

  /** The first section of that name. */
  section(name: string): PeekedSection | undefined {
    return this.byName.get(name);
  }

  /**
   * Every .symtab symbol of that name (a scan of the table: only the names
   * compared are decoded). `shndx` is the real section index, also past
   * SHN_LORESERVE (from SYMTAB_SHNDX).
   */
  symbolsNamed(name: string): PeekedSymbol[] {
    const symtab = this.sections.find((s) => s.type === SHT.SYMTAB);
    const strtab = symtab === undefined ? undefined : this.sections[symtab.link];
    if (symtab === undefined || strtab === undefined) return [];
    const xindex = this.sections.find((s) => s.type === SHT.SYMTAB_SHNDX && s.link === symtab.index)?.data;
    const want = Buffer.from(`${name}\0`, 'latin1');
    const view = new DataView(symtab.data.buffer, symtab.data.byteOffset, symtab.data.byteLength);
    const out: PeekedSymbol[] = [];
    for (let at = 0; at + SYM64_SIZE <= symtab.data.length; at += SYM64_SIZE) {
      const nameOffset = view.getUint32(at, this.little);
      if (strtab.data[nameOffset] !== want[0] || nameOffset + want.length > strtab.data.length) continue;
      if (strtab.data.compare(want, 0, want.length, nameOffset, nameOffset + want.length) !== 0) continue;
      let shndx = view.getUint16(at + 6, this.little);
      let reserved = 0;
      const entry = (at / SYM64_SIZE) * 4;
      if (shndx === SHN.XINDEX && xindex !== undefined && entry + 4 <= xindex.length) {
        shndx = this.little ? xindex.readUInt32LE(entry) : xindex.readUInt32BE(entry);
      } else if (shndx >= SHN.LORESERVE) {
        reserved = shndx;
        shndx = 0;
      }
      out.push({
        name,
        type: view.getUint8(at + 4) & 0xf,
        shndx,
        reserved,
        value: view.getBigUint64(at + 8, this.little),
        size: view.getBigUint64(at + 16, this.little),
      });
    }
    return out;
  }

  private slice(h: RawHeader, what: string): Buffer {
    const end = h.offset + h.size;
    if (end > BigInt(this.buf.length)) {
      throw new ElfError(
        'ELF_TRUNCATED',
        this.file,
        `${what} at offset ${hex(h.offset)}, size ${hex(h.size)}, extends past the end of the file (size ${hex(this.buf.length)})`,
      );
    }
    return this.buf.subarray(Number(h.offset), Number(end));
  }
}

function cString(data: Buffer, start: number): string {
  const end = data.indexOf(0, start);
  return data.toString('latin1', start, end < 0 ? data.length : end);
}
