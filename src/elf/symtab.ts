import { type ByteReader, ByteWriter } from './bytes.js';
import { type SectionIndex, SHN, SYM64_SIZE } from './constants.js';
import { ElfError, hex } from './errors.js';
import type { ElfSymbol } from './model.js';
import type { StringTable } from './strtab.js';

/** Decodes an Elf64_Sym array; `shndx` is the SYMTAB_SHNDX array when the object has one. */
export function decodeSymbols(
  r: ByteReader,
  offset: number,
  count: number,
  strtab: StringTable,
  sectionCount: number,
  shndx: { reader: ByteReader; offset: number } | undefined,
  where: string,
): ElfSymbol[] {
  const symbols = new Array<ElfSymbol>(count);
  for (let i = 0; i < count; i++) {
    const o = offset + i * SYM64_SIZE;
    const nameOffset = r.u32(o);
    const name = strtab.get(nameOffset);
    if (name === undefined) {
      throw new ElfError(
        'ELF_MALFORMED',
        r.file,
        `${where}: symbol ${i} has name offset ${hex(nameOffset)} outside its string table (size ${hex(strtab.size)})`,
      );
    }
    const info = r.u8(o + 4);
    let st_shndx = r.u16(o + 6);
    let reserved = 0;
    if (st_shndx === SHN.XINDEX) {
      if (!shndx) {
        throw new ElfError(
          'ELF_MALFORMED',
          r.file,
          `${where}: symbol ${i} (${name}) uses SHN_XINDEX but the object has no SHT_SYMTAB_SHNDX section`,
        );
      }
      st_shndx = shndx.reader.u32(shndx.offset + i * 4);
    } else if (st_shndx >= SHN.LORESERVE) {
      reserved = st_shndx;
      st_shndx = 0;
    }
    if (st_shndx >= sectionCount) {
      throw new ElfError(
        'ELF_MALFORMED',
        r.file,
        `${where}: symbol ${i} (${name}) is in section ${st_shndx}, but the object has ${sectionCount} sections`,
      );
    }
    symbols[i] = {
      name,
      nameOffset,
      value: r.u64(o + 8),
      size: r.u64(o + 16),
      bind: info >> 4,
      type: info & 0xf,
      other: r.u8(o + 5),
      shndx: st_shndx as SectionIndex,
      reserved,
    };
  }
  return symbols;
}

/** Whether any symbol needs the SYMTAB_SHNDX escape. */
export function needsExtendedIndex(symbols: readonly ElfSymbol[]): boolean {
  return symbols.some((s) => s.reserved === 0 && s.shndx >= SHN.LORESERVE);
}

/** Encodes symbols; returns the Elf64_Sym bytes and the matching SYMTAB_SHNDX bytes. */
export function encodeSymbols(symbols: readonly ElfSymbol[], nameOffsets: Uint32Array, little: boolean): { symtab: Buffer; shndx: Buffer } {
  const symtab = Buffer.alloc(symbols.length * SYM64_SIZE);
  const shndx = Buffer.alloc(symbols.length * 4);
  const w = new ByteWriter(symtab, little);
  const x = new ByteWriter(shndx, little);
  symbols.forEach((s, i) => {
    const o = i * SYM64_SIZE;
    w.u32(o, nameOffsets[i]!);
    w.u8(o + 4, ((s.bind & 0xf) << 4) | (s.type & 0xf));
    w.u8(o + 5, s.other);
    let st_shndx: number = s.reserved !== 0 ? s.reserved : s.shndx;
    if (s.reserved === 0 && s.shndx >= SHN.LORESERVE) {
      x.u32(i * 4, s.shndx);
      st_shndx = SHN.XINDEX;
    }
    w.u16(o + 6, st_shndx);
    w.u64(o + 8, s.value);
    w.u64(o + 16, s.size);
  });
  return { symtab, shndx };
}
