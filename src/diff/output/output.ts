import { classifySection } from '../model/section-kinds.js';
import {
  ElfObject,
  type ElfSymbol,
  type Relocation,
  RelocationTable,
  type Section,
  type SectionIndex,
  type SymbolIndex,
  SHF,
  SHT,
  STB,
  STT,
  StringTable,
  sectionIndex,
  symbolIndex,
} from '../../elf/index.js';
import type { Inclusion } from './inclusion.js';
import { isAnonymousLabel } from '../model/names.js';
import type { ObjectView, Slot } from '../model/object-view.js';
import type { SpecialEntry, SpecialIndex } from '../rules/special-entries.js';

/** Metadata the generator reads from the output object's `.klpforge.diff` section. */
export interface DiffMetadata {
  /** The patched object's source file name (its STT_FILE symbol): picks among same-named locals for sympos. */
  file?: string;
  /**
   * The original object's local functions and objects: which of several
   * same-named files (two `core.c`) the running kernel's block is.
   */
  neighbours?: string[];
  /** Changed functions: `name` in this object, `kernelName` in the running kernel (statics are renumbered). */
  changed: Array<{ name: string; kernelName: string; local: boolean }>;
  new: string[];
  callbacks: Array<{ kind: string; function: string }>;
  /** Symbols the new code takes from the running kernel; `local` ones need klp relocations with sympos. */
  externals: Array<{ name: string; local: boolean; kind: string; file?: string }>;
}

/**
 * Builds the differ's output object: the included functions and data, each
 * in a section of its own, the anonymous sections they use (strings,
 * constants), their special-section entries, and undefined symbols for all
 * they take from the running kernel. Relocations are rewritten onto it.
 */
export function buildOutputObject(
  p: ObjectView,
  inc: Inclusion,
  special: SpecialIndex,
  meta: DiffMetadata,
  kernelName: (sym: SymbolIndex) => string,
): ElfObject {
  const b = new Builder(p, kernelName);
  for (const sym of [...inc.functions, ...inc.data].sort((x, y) => x - y)) b.addExtent(sym);
  for (const sec of [...inc.sections].sort((x, y) => x - y)) b.addWholeSection(sec);
  b.addSpecialEntries(inc.functions, special);
  b.relocateAll();
  b.addMetadata(meta);
  return b.finish();
}

interface Pending {
  out: SectionIndex;
  src: SectionIndex;
  start: number;
  end: number;
}

class Builder {
  private sections: Section[] = [
    {
      name: '',
      type: SHT.NULL,
      flags: 0n,
      addr: 0n,
      addralign: 0n,
      entsize: 0n,
      link: 0,
      info: 0,
      body: { kind: 'bytes', data: Buffer.alloc(0) },
    },
  ];
  private readonly nullSymbol: ElfSymbol = {
    name: '',
    value: 0n,
    size: 0n,
    bind: STB.LOCAL,
    type: STT.NOTYPE,
    other: 0,
    shndx: 0 as SectionIndex,
    reserved: 0,
  };
  private locals: ElfSymbol[] = [];
  private globals: ElfSymbol[] = [];
  /** patched symbol → output symbol key (resolved to an index in finish()) */
  private defined = new Map<SymbolIndex, ElfSymbol>();
  private undefinedByName = new Map<string, ElfSymbol>();
  private sectionSymbol = new Map<SectionIndex, ElfSymbol>();
  /** Labels GOT relocations need in copied sections, by `outSection:offset`. */
  private labels = new Map<string, ElfSymbol>();
  /** patched indirection section (ppc64 `.toc`) → its output copy holding only the slots the output uses, by patched offset */
  private slotCopies = new Map<SectionIndex, { out: SectionIndex; slots: Map<number, number> }>();
  /** patched section → its whole copy in the output (strings, constants, code without a symbol) */
  private copied = new Map<SectionIndex, SectionIndex>();
  /** `section:start:end` of a copied symbol → its output section, so aliases share one copy */
  private extents = new Map<string, { out: SectionIndex; kind: string }>();
  private pending: Pending[] = [];
  private relocs = new Map<SectionIndex, Array<{ r: Relocation; sym: ElfSymbol }>>();

  constructor(
    private p: ObjectView,
    private kernelName: (sym: SymbolIndex) => string,
  ) {
    const file = p.obj.symbols.find((s) => s.type === STT.FILE);
    if (file) this.locals.push({ ...file, nameOffset: undefined });
  }

  private newSection(from: Section, name: string, data: Buffer | bigint): SectionIndex {
    const idx = sectionIndex(this.sections.length);
    this.sections.push({
      name,
      type: from.type,
      flags: from.flags & ~SHF.GROUP,
      addr: 0n,
      addralign: from.addralign,
      entsize: from.entsize,
      link: 0,
      info: 0,
      body: typeof data === 'bigint' ? { kind: 'nobits', size: data } : { kind: 'bytes', data: Buffer.from(data) },
    });
    const sym: ElfSymbol = { name: '', value: 0n, size: 0n, bind: STB.LOCAL, type: STT.SECTION, other: 0, shndx: idx, reserved: 0 };
    this.locals.push(sym);
    this.sectionSymbol.set(idx, sym);
    return idx;
  }

  addExtent(sym: SymbolIndex): void {
    const e = this.p.extentOf(sym)!;
    const s = this.p.symbol(sym);
    const from = this.p.obj.sections[e.section]!;
    // An alias (one extent, several names) is one copy with all its names: two would be two functions at two addresses.
    const at = `${e.section}:${e.start}:${e.end}`;
    const held = this.extents.get(at);
    if (held !== undefined) {
      this.addName(s, sym, held.out);
      // The copy is named as gcc named the section: `.text.__se_sys_newuname`, not after its alias `__s390x_sys_newuname`.
      if (from.name.endsWith(`.${s.name}`)) this.sections[held.out]!.name = `${held.kind}.${s.name}`;
      return;
    }
    // A relocated constant stays in a `.data.rel.ro` section: its flags (kept) say writable, for the relocations.
    const kind =
      s.type === STT.FUNC
        ? '.text'
        : (from.flags & SHF.WRITE) === 0n
          ? '.rodata'
          : !this.p.isWritable(e.section)
            ? '.data.rel.ro'
            : from.type === SHT.NOBITS
              ? '.bss'
              : '.data';
    const out = this.newSection(from, `${kind}.${s.name}`, from.body.kind === 'nobits' ? BigInt(e.end - e.start) : this.p.bytesOf(e));
    this.extents.set(at, { out, kind });
    this.addName(s, sym, out);
    this.pending.push({ out, src: e.section, start: e.start, end: e.end });
  }

  private addName(s: ElfSymbol, sym: SymbolIndex, out: SectionIndex): void {
    const copy: ElfSymbol = { ...s, value: 0n, shndx: out, nameOffset: undefined };
    (s.bind === STB.LOCAL ? this.locals : this.globals).push(copy);
    this.defined.set(sym, copy);
  }

  addWholeSection(sec: SectionIndex): SectionIndex {
    const from = this.p.obj.sections[sec]!;
    const out = this.newSection(
      from,
      from.name,
      from.body.kind === 'nobits' ? from.body.size : from.body.kind === 'bytes' ? from.body.data : Buffer.alloc(0),
    );
    this.copied.set(sec, out);
    this.pending.push({ out, src: sec, start: 0, end: Number.MAX_SAFE_INTEGER });
    return out;
  }

  private external(name: string): ElfSymbol {
    let s = this.undefinedByName.get(name);
    if (!s) {
      s = { name, value: 0n, size: 0n, bind: STB.GLOBAL, type: STT.NOTYPE, other: 0, shndx: 0 as SectionIndex, reserved: 0 };
      this.undefinedByName.set(name, s);
      this.globals.push(s);
    }
    return s;
  }

  /** The output symbol and addend for relocation k of a patched section. */
  private map(table: RelocationTable, k: number, src: SectionIndex): { sym: ElfSymbol; addend: bigint } {
    // No symbol (STN_UNDEF): a marker such as ppc64's R_PPC64_ENTRY on a large-model global entry.
    if (table.symbols[k] === 0) return { sym: this.nullSymbol, addend: table.addends[k]! };
    const t = this.p.target(table, k, src);
    const raw = this.p.symbol(table.symbols[k]! as SymbolIndex);
    const addend = table.addends[k]!;
    if (t.via) return this.slot(t.via);
    if (t.kind === 'symbol') {
      const d = this.defined.get(t.sym);
      if (d) return { sym: d, addend: t.offset };
      return { sym: this.external(this.kernelName(t.sym)), addend: t.offset };
    }
    // Strings and constants have no name the running kernel could resolve: whatever points at them
    // (code, a special-section entry, a copied constant) gets its own copy in the module.
    const out = this.copied.get(t.section) ?? this.copyAnonymous(t.section, src);
    // A GOT slot holds its symbol's address and the addend only offsets the slot: a section symbol
    // plus offset would load the section's start. Such a target keeps a label of its own, as gas gave it.
    if (this.p.arch.gotTypes.has(table.types[k]!)) return { sym: this.label(out, raw), addend };
    return { sym: this.sectionSymbol.get(out)!, addend: raw.value + addend };
  }

  /**
   * The output's own slot for a patched slot of an indirection section
   * (ppc64 `.toc`): only the slots included code loads are carried, in the
   * order first used, each with its bytes and its relocation.
   */
  private slot(via: Slot): { sym: ElfSymbol; addend: bigint } {
    let copy = this.slotCopies.get(via.section);
    if (!copy) {
      const from = this.p.obj.sections[via.section]!;
      copy = { out: this.newSection(from, from.name, Buffer.alloc(0)), slots: new Map() };
      this.slotCopies.set(via.section, copy);
    }
    let at = copy.slots.get(via.offset);
    if (at === undefined) {
      const body = this.sections[copy.out]!.body as { kind: 'bytes'; data: Buffer };
      at = body.data.length;
      copy.slots.set(via.offset, at);
      body.data = Buffer.concat([body.data, this.slice(via.section, via.offset, via.size)]);
      this.copyRelocations(via.section, via.offset, via.offset + via.size, copy.out, via.offset - at);
    }
    return { sym: this.sectionSymbol.get(copy.out)!, addend: BigInt(at) };
  }

  /** A local label in an output section at the place `raw` (a gas label like `.LC0`, or a section symbol) marks. */
  private label(out: SectionIndex, raw: ElfSymbol): ElfSymbol {
    const key = `${out}:${raw.value}`;
    let s = this.labels.get(key);
    if (!s) {
      const name = isAnonymousLabel(raw.name) ? raw.name : `.L${this.sections[out]!.name}.${raw.value}`;
      s = { name, value: raw.value, size: 0n, bind: STB.LOCAL, type: STT.NOTYPE, other: 0, shndx: out, reserved: 0 };
      this.labels.set(key, s);
      this.locals.push(s);
    }
    return s;
  }

  /**
   * Copies a section without symbols that something in the output points at;
   * its own relocations are queued. Writable data must never get here: a copy
   * would fork its state, and the differ refuses the code that uses it.
   */
  private copyAnonymous(section: SectionIndex, from: SectionIndex): SectionIndex {
    if (this.p.isWritable(section) && classifySection(this.p.sectionName(section)) !== 'callsite') {
      throw new Error(
        `${this.p.file}: ${this.p.sectionName(section)} is writable data without a symbol, referenced from ${this.p.sectionName(from)}, ` +
          'yet the differ did not refuse it: a klpforge bug, please report it',
      );
    }
    return this.addWholeSection(section);
  }

  /** Copies the relocations of everything added, including sections the copying itself pulls in. */
  relocateAll(): void {
    // An index walk, not shift(): copying may append to the queue, and shift() would make it quadratic.
    for (let i = 0; i < this.pending.length; i++) {
      const pend = this.pending[i]!;
      this.copyRelocations(pend.src, pend.start, pend.end, pend.out, pend.start);
    }
    this.pending = [];
  }

  private copyRelocations(src: SectionIndex, start: number, end: number, out: SectionIndex, base: number): void {
    const r = this.p.relocationsIn(src, start, end);
    if (!r) return;
    const list = this.relocs.get(out) ?? [];
    for (const k of r.entries) {
      const { sym, addend } = this.map(r.table, k, src);
      list.push({ r: { offset: r.table.offsets[k]! - BigInt(base), type: r.table.types[k]!, symbol: 0 as SymbolIndex, addend }, sym });
    }
    this.relocs.set(out, list);
  }

  /** Copies the special-section entries of the included functions, dropping metadata-only tables. */
  addSpecialEntries(functions: ReadonlySet<SymbolIndex>, special: SpecialIndex): void {
    const bySection = new Map<string, SpecialEntry[]>();
    for (const fn of [...functions].sort((a, b) => a - b)) {
      for (const e of special.byFunction.get(fn) ?? []) {
        if (e.def.metadata) continue;
        const list = bySection.get(e.def.name) ?? [];
        list.push(e);
        bySection.set(e.def.name, list);
      }
    }
    for (const [name, entries] of bySection) {
      // What the entries point at without a symbol (.altinstr_replacement code, the file name of a
      // __bug_table entry in a string section no code uses) is copied whole by map().
      const from = this.p.obj.sections[entries[0]!.section]!;
      const out = this.newSection(from, name, Buffer.concat(entries.map((e) => this.slice(e.section, e.start, e.size))));
      let at = 0;
      for (const e of entries) {
        this.copyRelocations(e.section, e.start, e.start + e.size, out, e.start - at);
        at += e.size;
      }
      // A table kept in step with this one (ORC data beside .orc_unwind_ip) takes the same entry numbers.
      const def = entries[0]!.def;
      const parallel = def.parallel && this.p.obj.findSection(def.parallel.name);
      if (def.parallel && parallel !== undefined) {
        const size = special.sizes.get(def.parallel.name)?.size ?? def.parallel.size ?? 0;
        const rows = entries.map((e) => this.slice(parallel, (e.start / e.size) * size, size));
        this.newSection(this.p.obj.sections[parallel]!, def.parallel.name, Buffer.concat(rows));
      }
    }
  }

  private slice(section: SectionIndex, start: number, size: number): Buffer {
    const body = this.p.obj.sections[section]!.body;
    return body.kind === 'bytes' ? body.data.subarray(start, start + size) : Buffer.alloc(size);
  }

  addMetadata(meta: DiffMetadata): void {
    this.sections.push({
      name: '.klpforge.diff',
      type: SHT.PROGBITS,
      flags: 0n,
      addr: 0n,
      addralign: 1n,
      entsize: 0n,
      link: 0,
      info: 0,
      body: { kind: 'bytes', data: Buffer.from(JSON.stringify(meta)) },
    });
  }

  finish(): ElfObject {
    const symbols: ElfSymbol[] = [this.nullSymbol, ...this.locals, ...this.globals];
    const indexOf = new Map<ElfSymbol, SymbolIndex>(symbols.map((s, i) => [s, symbolIndex(i)]));
    const symtab = sectionIndex(this.sections.length);
    const strtab = sectionIndex(symtab + 1);
    for (const [out, list] of [...this.relocs].sort((a, b) => a[0] - b[0])) {
      if (list.length === 0) continue;
      const table = RelocationTable.from(
        true,
        list.map(({ r, sym }) => ({ ...r, symbol: indexOf.get(sym)! })),
      );
      this.sections.push({
        name: `.rela${this.sections[out]!.name}`,
        type: SHT.RELA,
        flags: SHF.INFO_LINK,
        addr: 0n,
        addralign: 8n,
        entsize: 24n,
        link: symtab,
        info: out,
        body: { kind: 'relocations', table },
      });
    }
    // The symbol table must come at the index we promised the relocation sections.
    const rest = this.sections.splice(symtab);
    this.sections.push(
      {
        name: '.symtab',
        type: SHT.SYMTAB,
        flags: 0n,
        addr: 0n,
        addralign: 8n,
        entsize: 24n,
        link: strtab,
        info: 0,
        body: { kind: 'symtab', symbols },
      },
      {
        name: '.strtab',
        type: SHT.STRTAB,
        flags: 0n,
        addr: 0n,
        addralign: 1n,
        entsize: 0n,
        link: 0,
        info: 0,
        body: { kind: 'strtab', table: new StringTable() },
      },
      ...rest,
    );
    this.sections.push({
      name: '.shstrtab',
      type: SHT.STRTAB,
      flags: 0n,
      addr: 0n,
      addralign: 1n,
      entsize: 0n,
      link: 0,
      info: 0,
      body: { kind: 'strtab', table: new StringTable() },
    });
    const ident = { ...this.p.obj.ident };
    return new ElfObject(ident, this.sections, sectionIndex(this.sections.length - 1));
  }
}
