import {
  type ElfObject,
  type ElfSymbol,
  type RelocationTable,
  type SectionIndex,
  type SymbolIndex,
  SHF,
  SHN,
  SHT,
  STT,
} from '../../elf/index.js';
import type { ArchRules } from '../arch.js';
import { specialSections } from '../rules/special-sections.js';
import { isAnonymousLabel } from './names.js';

const RELRO = /^\.data\.rel\.ro(\.|$)/;

/** A slot of an indirection section (arch.ts: indirectSections) a reference goes through. */
export interface Slot {
  section: SectionIndex;
  offset: number;
  size: number;
}

/**
 * Where a relocation points, in terms that survive a rebuild (names and
 * contents, not indexes). `via`: the reference loads the target's address
 * from this slot (ppc64 `.toc`), and the target is what the slot names.
 */
export type Target = (
  | { kind: 'symbol'; sym: SymbolIndex; offset: bigint }
  | { kind: 'string'; text: string; section: SectionIndex }
  /** Anonymous data (constants gcc placed by section): compared by the bytes it holds. */
  | { kind: 'section'; section: SectionIndex; offset: bigint; contents: Buffer }
) & { via?: Slot };

/** A defined function or data object: a symbol and the byte range it covers in its section. */
export interface Extent {
  sym: SymbolIndex;
  section: SectionIndex;
  start: number;
  end: number;
}

interface SectionRelocs {
  table: RelocationTable;
  /** Entry indexes sorted by offset. */
  order: Uint32Array;
  offsets: Float64Array;
  /** Resolved targets, filled on first use: every stage asks for the same ones. */
  targets: Array<Target | undefined>;
}

/**
 * One object as the differ sees it: functions and data objects as symbol
 * extents, relocations sliced by extent, and relocation targets resolved to
 * names or contents. Everything is indexed once, in O(sections + symbols + relocations).
 */
export class ObjectView {
  /** Named FUNC/OBJECT symbols, by section, sorted by value: resolves section-symbol targets. */
  private symbolsBySection = new Map<SectionIndex, SymbolIndex[]>();
  private relocs = new Map<SectionIndex, SectionRelocs>();
  /** Indirection sections (arch.ts: indirectSections) → their slot size. */
  private slotSizes = new Map<SectionIndex, number>();
  /** Special sections whose offsets count from the entry's start (special-sections.ts: entryRelative) → entry size. */
  private entryRelative = new Map<SectionIndex, number>();

  constructor(
    readonly obj: ElfObject,
    readonly arch: ArchRules,
    readonly file: string,
  ) {
    obj.symbols.forEach((s, i) => {
      if ((s.type === STT.FUNC || s.type === STT.OBJECT) && s.reserved === 0 && s.shndx !== SHN.UNDEF) {
        const list = this.symbolsBySection.get(s.shndx);
        if (list) list.push(i as SymbolIndex);
        else this.symbolsBySection.set(s.shndx, [i as SymbolIndex]);
      }
    });
    for (const list of this.symbolsBySection.values()) {
      list.sort((a, b) => Number(obj.symbols[a]!.value - obj.symbols[b]!.value) || a - b);
    }
    obj.sections.forEach((s) => {
      if (s.body.kind !== 'relocations' || s.info === 0) return;
      const table = s.body.table;
      const order = new Uint32Array(table.length).map((_v, k) => k);
      const offsets = Float64Array.from(table.offsets, (o) => Number(o));
      order.sort((a, b) => offsets[a]! - offsets[b]!);
      this.relocs.set(s.info as SectionIndex, { table, order, offsets, targets: new Array<Target | undefined>(table.length) });
    });
    for (const d of arch.indirectSections ?? []) for (const i of obj.sectionsNamed(d.name)) this.slotSizes.set(i, d.slotSize);
    for (const d of specialSections(obj.ident.machine)) {
      if (d.entryRelative && d.defaultSize) for (const i of obj.sectionsNamed(d.name)) this.entryRelative.set(i, d.defaultSize);
    }
  }

  /** Whether a section holds address slots code reaches its targets through (ppc64 `.toc`). */
  isIndirect(section: SectionIndex): boolean {
    return this.slotSizes.has(section);
  }

  symbol(i: SymbolIndex): ElfSymbol {
    return this.obj.symbols[i]!;
  }

  sectionName(i: SectionIndex): string {
    return this.obj.sections[i]?.name ?? `#${i}`;
  }

  isExec(section: SectionIndex): boolean {
    return ((this.obj.sections[section]?.flags ?? 0n) & SHF.EXECINSTR) !== 0n;
  }

  /**
   * Whether a section holds state the running kernel may change. SHF_WRITE,
   * except `.data.rel.ro*`: the constants that hold addresses, which a
   * position-independent build (s390x's -fPIE) makes writable only so that
   * relocations can be applied; C declared them const and never writes them.
   */
  isWritable(section: SectionIndex): boolean {
    const s = this.obj.sections[section];
    return s !== undefined && (s.flags & SHF.WRITE) !== 0n && !RELRO.test(s.name);
  }

  isStrings(section: SectionIndex): boolean {
    return ((this.obj.sections[section]?.flags ?? 0n) & SHF.STRINGS) !== 0n;
  }

  extentOf(sym: SymbolIndex): Extent | undefined {
    const s = this.symbol(sym);
    if (s.reserved !== 0 || s.shndx === SHN.UNDEF) return undefined;
    const start = Number(s.value);
    const sec = this.obj.sections[s.shndx];
    const secSize = sec ? sectionSize(this.obj, s.shndx) : 0;
    // A symbol with size 0 (asm labels) covers up to the next symbol or the section end.
    let end = start + Number(s.size);
    if (s.size === 0n) {
      const list = this.symbolsBySection.get(s.shndx) ?? [];
      const next = list.map((k) => Number(this.symbol(k).value)).find((v) => v > start);
      end = next ?? secSize;
    }
    return { sym, section: s.shndx, start, end: Math.min(end, secSize) };
  }

  bytesOf(e: Extent): Buffer {
    const body = this.obj.sections[e.section]!.body;
    if (body.kind !== 'bytes') return Buffer.alloc(e.end - e.start); // NOBITS: zeros
    return body.data.subarray(e.start, e.end);
  }

  /** Indexes (into the section's relocation table) of the relocations inside [start, end), by offset (a view, not a copy). */
  relocationsIn(section: SectionIndex, start: number, end: number): { table: RelocationTable; entries: Uint32Array } | undefined {
    const r = this.relocs.get(section);
    if (!r) return undefined;
    let lo = 0;
    let hi = r.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r.offsets[r.order[mid]!]! < start) lo = mid + 1;
      else hi = mid;
    }
    let k = lo;
    while (k < r.order.length && r.offsets[r.order[k]!]! < end) k++;
    return { table: r.table, entries: r.order.subarray(lo, k) };
  }

  /** The named function or object covering `offset` in `section`. */
  symbolCovering(section: SectionIndex, offset: number): SymbolIndex | undefined {
    const list = this.symbolsBySection.get(section);
    if (!list) return undefined;
    let found: SymbolIndex | undefined;
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.symbol(list[mid]!);
      if (Number(s.value) <= offset) {
        found = list[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found === undefined) return undefined;
    const s = this.symbol(found);
    return offset < Number(s.value + (s.size === 0n ? 1n : s.size)) || s.size === 0n ? found : undefined;
  }

  /** All named functions and objects defined in a section. */
  symbolsIn(section: SectionIndex): readonly SymbolIndex[] {
    return this.symbolsBySection.get(section) ?? [];
  }

  /** The NUL-terminated string at `offset` of a string section. */
  stringAt(section: SectionIndex, offset: number): string {
    const body = this.obj.sections[section]?.body;
    if (body?.kind !== 'bytes' || offset < 0 || offset >= body.data.length)
      return `<offset ${offset} outside ${this.sectionName(section)}>`;
    const end = body.data.indexOf(0, offset);
    return body.data.toString('latin1', offset, end < 0 ? body.data.length : end);
  }

  /**
   * Resolves relocation `i` of `table` (applied in `from`) to a stable target:
   * a symbol (section symbols and gas's `.L` labels resolved to the function or
   * object they point into), a string's contents, or a section and offset.
   */
  target(table: RelocationTable, i: number, from: SectionIndex): Target {
    const cache = this.relocs.get(from);
    if (cache?.table === table) {
      const known = cache.targets[i];
      if (known) return known;
      return (cache.targets[i] = this.resolve(table, i, from));
    }
    return this.resolve(table, i, from);
  }

  private resolve(table: RelocationTable, i: number, from: SectionIndex): Target {
    const symIndex = table.symbols[i]! as SymbolIndex;
    const addend = table.addends[i]!;
    const sym = this.symbol(symIndex);
    const anonymous = sym.type === STT.SECTION || (sym.type === STT.NOTYPE && isAnonymousLabel(sym.name) && sym.reserved === 0);
    if (!anonymous || sym.shndx === SHN.UNDEF || sym.reserved !== 0) return { kind: 'symbol', sym: symIndex, offset: addend };
    const section = sym.shndx;
    const slotSize = this.slotSizes.get(section);
    if (slotSize !== undefined) return this.throughSlot({ section, offset: Number(sym.value + addend), size: slotSize });
    const entrySize = this.entryRelative.get(from);
    const bias =
      entrySize !== undefined
        ? -BigInt(Number(table.offsets[i]!) % entrySize)
        : this.isExec(from) && this.arch.pcrelTypes.has(table.types[i]!)
          ? BigInt(this.arch.pcrelBias)
          : 0n;
    const at = sym.value + addend + bias;
    if (this.isStrings(section)) return { kind: 'string', text: this.stringAt(section, Number(at)), section };
    // An immediate after the PC-relative field (`cmpl $0, x(%rip)`) moves the instruction's end by its size:
    // when nothing is at the usual spot, look as far on as the architecture allows (pcrelSlack).
    const slack = bias !== 0n ? BigInt(this.arch.pcrelSlack) : 0n;
    for (let extra = 0n; extra <= slack; extra++) {
      const covering = this.symbolCovering(section, Number(at + extra));
      if (covering !== undefined) return { kind: 'symbol', sym: covering, offset: sym.value + addend - this.symbol(covering).value };
    }
    return { kind: 'section', section, offset: sym.value + addend, contents: this.anonymousContents(section, Number(at)) };
  }

  /** What a slot of an indirection section names: its relocation's target, or (no relocation) the constant it holds. */
  private throughSlot(via: Slot): Target {
    const r = this.relocationsIn(via.section, via.offset, via.offset + via.size);
    const k = r?.entries[0];
    if (r && k !== undefined && Number(r.table.offsets[k]!) === via.offset) return { ...this.target(r.table, k, via.section), via };
    const body = this.obj.sections[via.section]!.body;
    const contents = body.kind === 'bytes' ? body.data.subarray(via.offset, via.offset + via.size) : Buffer.alloc(via.size);
    return { kind: 'section', section: via.section, offset: BigInt(via.offset), contents, via };
  }

  /** A mergeable constant (entsize bytes at the offset) or, for other anonymous data, the whole section. */
  private anonymousContents(section: SectionIndex, at: number): Buffer {
    const s = this.obj.sections[section]!;
    if (s.body.kind !== 'bytes') return Buffer.alloc(0);
    if ((s.flags & SHF.MERGE) !== 0n && s.entsize > 0n) return s.body.data.subarray(at, at + Number(s.entsize));
    return s.body.data;
  }
}

export function sectionSize(obj: ElfObject, i: SectionIndex): number {
  const b = obj.sections[i]!.body;
  if (b.kind === 'bytes') return b.data.length;
  if (b.kind === 'nobits') return Number(b.size);
  return 0;
}

export function isDataSection(obj: ElfObject, i: SectionIndex): boolean {
  const s = obj.sections[i]!;
  return (s.type === SHT.PROGBITS || s.type === SHT.NOBITS) && (s.flags & SHF.ALLOC) !== 0n && (s.flags & SHF.EXECINSTR) === 0n;
}
