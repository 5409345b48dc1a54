import { type ByteReader, ByteWriter } from './bytes.js';
import { REL64_SIZE, RELA64_SIZE, type SymbolIndex } from './constants.js';
import { ElfError } from './errors.js';

export interface Relocation {
  offset: bigint;
  type: number;
  symbol: SymbolIndex;
  /** 0n for SHT_REL, where the addend sits in the section bytes. */
  addend: bigint;
}

/**
 * The entries of one SHT_RELA / SHT_REL section as parallel typed arrays:
 * `vmlinux.o` carries hundreds of thousands of relocations, and an object per
 * entry would cost several times the memory of the bytes themselves.
 */
export class RelocationTable {
  constructor(
    readonly withAddend: boolean,
    readonly offsets: BigUint64Array,
    readonly types: Uint32Array,
    readonly symbols: Uint32Array,
    readonly addends: BigInt64Array,
  ) {}

  static empty(withAddend: boolean, length = 0): RelocationTable {
    return new RelocationTable(
      withAddend,
      new BigUint64Array(length),
      new Uint32Array(length),
      new Uint32Array(length),
      new BigInt64Array(length),
    );
  }

  static from(withAddend: boolean, entries: readonly Relocation[]): RelocationTable {
    const t = RelocationTable.empty(withAddend, entries.length);
    entries.forEach((r, i) => t.set(i, r));
    return t;
  }

  get length(): number {
    return this.offsets.length;
  }

  get(i: number): Relocation {
    return {
      offset: this.offsets[i]!,
      type: this.types[i]!,
      symbol: this.symbols[i]! as SymbolIndex,
      addend: this.addends[i]!,
    };
  }

  set(i: number, r: Relocation): void {
    this.offsets[i] = r.offset;
    this.types[i] = r.type;
    this.symbols[i] = r.symbol;
    this.addends[i] = this.withAddend ? r.addend : 0n;
  }

  *[Symbol.iterator](): IterableIterator<Relocation> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}

/** Decodes `count` Elf64_Rela (or Elf64_Rel) entries; symbol indexes are checked against `symbolCount`. */
export function decodeRelocations(
  r: ByteReader,
  offset: number,
  count: number,
  withAddend: boolean,
  symbolCount: number,
  where: string,
): RelocationTable {
  const t = RelocationTable.empty(withAddend, count);
  const size = withAddend ? RELA64_SIZE : REL64_SIZE;
  for (let i = 0; i < count; i++) {
    const o = offset + i * size;
    // r_info is (sym << 32 | type); reading its halves avoids a BigInt per entry.
    const sym = r.little ? r.u32(o + 12) : r.u32(o + 8);
    if (sym >= symbolCount) {
      throw new ElfError(
        'ELF_MALFORMED',
        r.file,
        `${where}: relocation ${i} refers to symbol ${sym}, but its symbol table has ${symbolCount} symbols`,
      );
    }
    t.offsets[i] = r.u64(o);
    t.types[i] = r.little ? r.u32(o + 8) : r.u32(o + 12);
    t.symbols[i] = sym;
    if (withAddend) t.addends[i] = r.i64(o + 16);
  }
  return t;
}

export function encodeRelocations(t: RelocationTable, little: boolean): Buffer {
  const size = t.withAddend ? RELA64_SIZE : REL64_SIZE;
  const out = Buffer.alloc(t.length * size);
  const w = new ByteWriter(out, little);
  for (let i = 0; i < t.length; i++) {
    const o = i * size;
    w.u64(o, t.offsets[i]!);
    w.u32(little ? o + 12 : o + 8, t.symbols[i]!);
    w.u32(little ? o + 8 : o + 12, t.types[i]!);
    if (t.withAddend) w.i64(o + 16, t.addends[i]!);
  }
  return out;
}
