import { type SectionIndex, type SymbolIndex, SHN, SHT, STB, STT } from './constants.js';
import type { StringTable } from './strtab.js';
import type { RelocationTable } from './relocations.js';

/** File-wide identity: what the first 16 bytes and e_machine say. */
export interface ElfIdent {
  endian: 'little' | 'big';
  osabi: number;
  abiVersion: number;
  type: number; // e_type (ET.*)
  machine: number; // e_machine (EM.*)
  version: number; // e_version
  entry: bigint;
  flags: number; // e_flags (ABI version on ppc64, etc.)
}

/** Linked-file program headers, kept verbatim; relocatable objects have none. */
export interface ProgramHeaders {
  offset: bigint;
  entrySize: number;
  count: number;
  bytes: Buffer;
}

export interface ElfSymbol {
  name: string;
  value: bigint;
  size: bigint;
  bind: number; // STB.*
  type: number; // STT.*
  other: number; // st_other (visibility and arch bits)
  /** The section the symbol is defined in; 0 when undefined or `reserved` is set. */
  shndx: SectionIndex;
  /** A reserved st_shndx (SHN.ABS, SHN.COMMON, SHN.LIVEPATCH…), or 0 for none. */
  reserved: number;
  /** Where the name was in the string table when read; lets unchanged names keep their offset. */
  nameOffset?: number;
}

export interface GroupBody {
  kind: 'group';
  flags: number;
  members: SectionIndex[];
}

/** What a section holds. Tables are parsed; everything else stays bytes. */
export type SectionBody =
  | { kind: 'bytes'; data: Buffer }
  | { kind: 'nobits'; size: bigint }
  | { kind: 'strtab'; table: StringTable }
  | { kind: 'symtab'; symbols: ElfSymbol[] }
  | { kind: 'relocations'; table: RelocationTable }
  | GroupBody
  /** SHT_SYMTAB_SHNDX: regenerated from the symbol table named by `link`. */
  | { kind: 'shndx' };

export interface Section {
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  addralign: bigint;
  entsize: bigint;
  /** sh_link: the string table of a symbol table, the symbol table of a relocation section… */
  link: number;
  /** sh_info: the section a relocation section applies to, the first global of a symbol table… */
  info: number;
  body: SectionBody;
  /** Where the section was in the file it was read from (informational, not written). */
  fileOffset?: bigint;
  nameOffset?: number;
}

/**
 * An ELF64 object (relocatable first; linked files read too). Sections are
 * indexed as in the file; section 0 is the null section. Lookups by name are
 * Maps built once; call `reindex()` after changing names or adding sections.
 */
export class ElfObject {
  private byName = new Map<string, SectionIndex[]>();
  private relocsFor = new Map<SectionIndex, SectionIndex[]>();
  private symbolsByName = new Map<string, SymbolIndex[]>();
  private symtabIndex: SectionIndex | undefined;

  constructor(
    public ident: ElfIdent,
    public sections: Section[],
    /** Index of the section-name string table (e_shstrndx). */
    public shstrndx: SectionIndex,
    public programHeaders?: ProgramHeaders,
  ) {
    this.reindex();
  }

  get littleEndian(): boolean {
    return this.ident.endian === 'little';
  }

  reindex(): void {
    this.byName.clear();
    this.relocsFor.clear();
    this.symbolsByName.clear();
    this.symtabIndex = undefined;
    this.sections.forEach((s, i) => {
      const idx = i as SectionIndex;
      push(this.byName, s.name, idx);
      if (s.body.kind === 'relocations') push(this.relocsFor, s.info as SectionIndex, idx);
      if (s.type === SHT.SYMTAB && this.symtabIndex === undefined) this.symtabIndex = idx;
    });
    this.symbols.forEach((sym, i) => push(this.symbolsByName, sym.name, i as SymbolIndex));
  }

  section(index: SectionIndex): Section {
    const s = this.sections[index];
    if (!s) throw new RangeError(`section index ${index} out of range (${this.sections.length} sections)`);
    return s;
  }

  /** Every section with this name, in index order (names repeat: `.group`, COMDAT copies). */
  sectionsNamed(name: string): readonly SectionIndex[] {
    return this.byName.get(name) ?? [];
  }

  /** The first section with this name. */
  findSection(name: string): SectionIndex | undefined {
    return this.byName.get(name)?.[0];
  }

  /** The relocation sections (SHT_RELA/SHT_REL) that apply to `target`. */
  relocationsFor(target: SectionIndex): readonly SectionIndex[] {
    return this.relocsFor.get(target) ?? [];
  }

  /** The SHT_SYMTAB section, if any. */
  get symtab(): SectionIndex | undefined {
    return this.symtabIndex;
  }

  /** The symbols of the SHT_SYMTAB (empty when there is none). Index 0 is the null symbol. */
  get symbols(): ElfSymbol[] {
    if (this.symtabIndex === undefined) return [];
    const body = this.section(this.symtabIndex).body;
    return body.kind === 'symtab' ? body.symbols : [];
  }

  symbol(index: SymbolIndex): ElfSymbol {
    const s = this.symbols[index];
    if (!s) throw new RangeError(`symbol index ${index} out of range (${this.symbols.length} symbols)`);
    return s;
  }

  /** Every symbol with this name (locals repeat across file-scope blocks). */
  symbolsNamed(name: string): readonly SymbolIndex[] {
    return this.symbolsByName.get(name) ?? [];
  }

  /** The symbol's name, or for a section symbol (which has none) its section's name. */
  displayName(sym: ElfSymbol): string {
    if (sym.type === STT.SECTION && sym.name === '') return this.symbolSection(sym)?.name ?? '';
    return sym.name;
  }

  /** The section a symbol is defined in, or undefined for undefined/reserved symbols. */
  symbolSection(sym: ElfSymbol): Section | undefined {
    return sym.reserved === 0 && sym.shndx !== SHN.UNDEF ? this.sections[sym.shndx] : undefined;
  }

  /** Number of leading local symbols (what sh_info of the symbol table must be). */
  static localCount(symbols: readonly ElfSymbol[]): number {
    let n = 0;
    while (n < symbols.length && symbols[n]!.bind === STB.LOCAL) n++;
    return n;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
