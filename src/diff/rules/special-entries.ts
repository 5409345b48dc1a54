import type { SectionIndex, SymbolIndex } from '../../elf/index.js';
import { sameTarget } from '../correlate/compare.js';
import type { Correlation } from '../correlate/correlate.js';
import { type ObjectView, sectionSize } from '../model/object-view.js';
import { sameReplacement } from './replacement-code.js';
import { inferEntrySize, type SpecialSection, specialSections } from './special-sections.js';

/** Entry sizes given by the user: option name or kpatch environment name → bytes. */
export type EntrySizes = ReadonlyMap<string, number>;

export interface ResolvedSize {
  size: number;
  source: 'option' | 'environment' | 'default' | 'inferred';
}

/** One record of a special section. */
export interface SpecialEntry {
  def: SpecialSection;
  section: SectionIndex;
  start: number;
  size: number;
}

/** The entry size of a special section: given (option, then environment), the table's default, or inferred from relocations. */
export function resolveEntrySize(v: ObjectView, def: SpecialSection, section: SectionIndex, given: EntrySizes): ResolvedSize | undefined {
  const opt = given.get(def.name);
  if (opt) return { size: opt, source: 'option' };
  const env = def.env ? Number(process.env[def.env]) : NaN;
  if (env > 0) return { size: env, source: 'environment' };
  if (def.defaultSize) return { size: def.defaultSize, source: 'default' };
  const r = v.relocationsIn(section, 0, Number.MAX_SAFE_INTEGER);
  const relocs = r
    ? Array.from(r.entries, (k) => {
        const target = v.symbol(r.table.symbols[k]! as SymbolIndex);
        return { offset: Number(r.table.offsets[k]!), code: target.reserved === 0 && target.shndx !== 0 && v.isExec(target.shndx) };
      })
    : [];
  const size = inferEntrySize(sectionSize(v.obj, section), relocs);
  return size ? { size, source: 'inferred' } : undefined;
}

export interface SpecialIndex {
  /** function symbol → its entries, in section order */
  byFunction: Map<SymbolIndex, SpecialEntry[]>;
  sizes: Map<string, ResolvedSize>;
  /** sections whose entry size could not be determined */
  unknownSize: string[];
}

/** Attributes every entry of every special section to the function its key relocation names. */
export function indexSpecialEntries(v: ObjectView, given: EntrySizes): SpecialIndex {
  const idx: SpecialIndex = { byFunction: new Map(), sizes: new Map(), unknownSize: [] };
  for (const def of specialSections(v.obj.ident.machine)) {
    for (const section of v.obj.sectionsNamed(def.name)) {
      const size = resolveEntrySize(v, def, section, given);
      if (!size) {
        idx.unknownSize.push(def.name);
        continue;
      }
      idx.sizes.set(def.name, size);
      const total = sectionSize(v.obj, section);
      for (let start = 0; start + size.size <= total; start += size.size) {
        const r = v.relocationsIn(section, start + def.keyOffset, start + def.keyOffset + 1);
        const k = r?.entries[0];
        if (r === undefined || k === undefined) continue;
        const t = v.target(r.table, k, section);
        if (t.kind !== 'symbol') continue;
        const list = idx.byFunction.get(t.sym) ?? [];
        list.push({ def, section, start, size: size.size });
        idx.byFunction.set(t.sym, list);
      }
    }
  }
  return idx;
}

/**
 * Compares a function's special entries in two builds, ignoring line-number
 * fields. Returns the name of the first section whose entries differ.
 */
export function specialEntriesDiffer(
  o: ObjectView,
  eo: readonly SpecialEntry[],
  p: ObjectView,
  ep: readonly SpecialEntry[],
  c: Correlation,
): string | undefined {
  const relevant = (list: readonly SpecialEntry[]) => list.filter((e) => !e.def.metadata && !e.def.derived);
  const a = relevant(eo);
  const b = relevant(ep);
  if (a.length !== b.length) {
    const names = new Set([...a, ...b].map((e) => e.def.name));
    for (const n of names) if (a.filter((e) => e.def.name === n).length !== b.filter((e) => e.def.name === n).length) return n;
    return a[0]?.def.name ?? b[0]?.def.name;
  }
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.def.name !== y.def.name || x.size !== y.size) return x.def.name;
    if (!sameEntry(o, x, p, y, c)) return x.def.name;
  }
  return undefined;
}

function sameEntry(o: ObjectView, x: SpecialEntry, p: ObjectView, y: SpecialEntry, c: Correlation): boolean {
  const bx = bytes(o, x);
  const by = bytes(p, y);
  const ro = o.relocationsIn(x.section, x.start, x.start + x.size);
  const rp = p.relocationsIn(y.section, y.start, y.start + y.size);
  const masked = new Set<number>();
  if (x.def.line) for (let k = 0; k < x.def.line.size; k++) masked.add(x.def.line.offset + k);
  for (const k of ro?.entries ?? []) {
    const width = o.arch.relocFieldSize.get(ro!.table.types[k]!) ?? 4;
    for (let b = 0; b < width; b++) masked.add(Number(ro!.table.offsets[k]!) - x.start + b);
  }
  for (let i = 0; i < bx.length; i++) if (!masked.has(i) && bx[i] !== by[i]) return false;
  const eo = ro?.entries ?? [];
  const ep = rp?.entries ?? [];
  if (eo.length !== ep.length) return false;
  for (let k = 0; k < eo.length; k++) {
    if (Number(ro!.table.offsets[eo[k]!]!) - x.start !== Number(rp!.table.offsets[ep[k]!]!) - y.start) return false;
    const to = o.target(ro!.table, eo[k]!, x.section);
    const tp = p.target(rp!.table, ep[k]!, y.section);
    if (sameTarget(o, to, p, tp, c)) continue;
    if (to.kind === 'section' && tp.kind === 'section' && sameReplacement(o, to, p, tp, c)) continue;
    return false;
  }
  return true;
}

function bytes(v: ObjectView, e: SpecialEntry): Buffer {
  const body = v.obj.sections[e.section]!.body;
  return body.kind === 'bytes' ? body.data.subarray(e.start, e.start + e.size) : Buffer.alloc(e.size);
}
