import type { RelocationTable, SectionIndex, SymbolIndex } from '../../elf/index.js';
import type { Correlation } from './correlate.js';
import { canonicalName } from '../model/names.js';
import { classifySection } from '../model/section-kinds.js';
import { sameButForLineNumbers } from '../rules/line-macros.js';
import { isSpecialStatic, lineFieldOf } from '../rules/static-locals.js';
import { type Extent, type ObjectView, type Target } from '../model/object-view.js';

/** One way two versions of a function or object differ, at an offset from its start. */
export interface Difference {
  offset: number;
  kind: 'size' | 'bytes' | 'relocation';
  /** For people: "call target changed (foo → bar)", "string literal changed", … */
  what: string;
  /** Byte range [from, to) for 'bytes' differences. */
  to?: number;
}

const quote = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 37)}...` : s);

export function describeTarget(v: ObjectView, t: Target): string {
  switch (t.kind) {
    case 'symbol':
      return v.obj.displayName(v.symbol(t.sym));
    case 'string':
      return quote(t.text);
    case 'section':
      return `${v.sectionName(t.section)}+${t.offset}`;
  }
}

/** Whether two relocation targets are the same thing in both builds. */
export function sameTarget(o: ObjectView, to: Target, p: ObjectView, tp: Target, c: Correlation): boolean {
  if (to.kind !== tp.kind || (to.via === undefined) !== (tp.via === undefined)) return false;
  switch (to.kind) {
    case 'string':
      return to.text === (tp as typeof to).text || sameButForLineNumbers(to.text, (tp as typeof to).text);
    case 'symbol': {
      const q = tp as typeof to;
      if (to.offset !== q.offset) return false;
      // No symbol at all (STN_UNDEF: ppc64's R_PPC64_ENTRY marker) on both sides.
      if (to.sym === 0 || q.sym === 0) return to.sym === q.sym;
      // Special statics are the same when they are alike, whichever number gcc or a macro gave them.
      if (isSpecialStatic(o, to.sym) && isSpecialStatic(p, q.sym)) return sameSpecialStatic(o, to.sym, p, q.sym, c);
      const twin = c.twinOfOrig.get(to.sym);
      if (twin !== undefined) return twin === q.sym;
      // Uncorrelated: the same undefined global on both sides still is the same thing.
      return o.symbol(to.sym).name === p.symbol(q.sym).name && o.symbol(to.sym).name !== '';
    }
    case 'section': {
      const q = tp as typeof to;
      return (
        // A constant in an indirection slot: whichever slot holds it.
        (to.offset === q.offset || to.via !== undefined) &&
        (to.contents.equals(q.contents) || sameButForUbsanLine(p.sectionName(q.section), to.contents, q.contents)) &&
        (c.sectionTwinOfPatched.get(q.section) === to.section || o.sectionName(to.section) === p.sectionName(q.section))
      );
    }
  }
}

/**
 * UBSAN's per-check data opens with struct source_location { const char
 * *file_name; u32 line; u32 column; }: a check site whose line alone moved
 * is the same site, as a WARN's line in __bug_table is. The pointer field is
 * zero in the object (a relocation fills it).
 */
function sameButForUbsanLine(name: string, a: Buffer, b: Buffer): boolean {
  if (!/\.\.Lubsan_data/.test(name) || classifySection(name) !== 'callsite' || a.length !== b.length || a.length < 16) return false;
  return a.subarray(0, 8).equals(b.subarray(0, 8)) && a.subarray(12).equals(b.subarray(12));
}

interface Relocs {
  table: RelocationTable;
  entries: ArrayLike<number>;
  section: SectionIndex;
  base: number;
}

function relocsOf(v: ObjectView, e: Extent): Relocs {
  const r = v.relocationsIn(e.section, e.start, e.end);
  return { table: r?.table ?? (undefined as unknown as RelocationTable), entries: r?.entries ?? [], section: e.section, base: e.start };
}

/**
 * Compares a function (or data object) in two builds: bytes, then
 * relocations by what they point at (names, string contents), never by
 * symbol index or section offset, which shift between any two builds.
 */
export function compareExtents(o: ObjectView, eo: Extent, p: ObjectView, ep: Extent, c: Correlation): Difference[] {
  const diffs: Difference[] = [];
  const lo = eo.end - eo.start;
  const lp = ep.end - ep.start;
  if (lo !== lp) diffs.push({ offset: Math.min(lo, lp), kind: 'size', what: `size changed from ${lo} to ${lp} bytes` });

  const bo = o.bytesOf(eo);
  const bp = p.bytesOf(ep);
  const n = Math.min(bo.length, bp.length);
  for (let i = 0; i < n; i++) {
    if (bo[i] === bp[i]) continue;
    let j = i + 1;
    while (j < n && bo[j] !== bp[j]) j++;
    diffs.push({ offset: i, to: j, kind: 'bytes', what: 'instruction or data bytes differ' });
    i = j;
  }

  const ro = relocsOf(o, eo);
  const rp = relocsOf(p, ep);
  const m = Math.max(ro.entries.length, rp.entries.length);
  for (let k = 0; k < m; k++) {
    const io = ro.entries[k];
    const ip = rp.entries[k];
    if (io === undefined || ip === undefined) {
      const at = io !== undefined ? Number(ro.table.offsets[io]!) - ro.base : Number(rp.table.offsets[ip!]!) - rp.base;
      diffs.push({ offset: at, kind: 'relocation', what: io === undefined ? 'a reference was added' : 'a reference was removed' });
      break;
    }
    const offO = Number(ro.table.offsets[io]!) - ro.base;
    const offP = Number(rp.table.offsets[ip]!) - rp.base;
    if (offO !== offP) {
      diffs.push({ offset: Math.min(offO, offP), kind: 'relocation', what: 'references moved (code layout changed)' });
      break;
    }
    if (ro.table.types[io] !== rp.table.types[ip]) {
      diffs.push({ offset: offO, kind: 'relocation', what: `relocation type changed (${ro.table.types[io]} → ${rp.table.types[ip]})` });
      continue;
    }
    const to = o.target(ro.table, io, ro.section);
    const tp = p.target(rp.table, ip, rp.section);
    if (sameTarget(o, to, p, tp, c)) continue;
    diffs.push({ offset: offO, kind: 'relocation', what: describeChange(o, to, p, tp) });
  }
  return diffs.sort((a, b) => a.offset - b.offset);
}

function describeChange(o: ObjectView, to: Target, p: ObjectView, tp: Target): string {
  const a = describeTarget(o, to);
  const b = describeTarget(p, tp);
  if (to.kind === 'string' && tp.kind === 'string') return `string literal changed (${a} → ${b})`;
  if (to.kind === 'symbol' && tp.kind === 'symbol' && a === b)
    return `relocation addend changed (${a}${sign(to.offset)} → ${b}${sign(tp.offset)})`;
  if (o.arch.callTypes.size > 0 && a !== b) return `call or reference target changed (${a} → ${b})`;
  return `reference changed (${a} → ${b})`;
}

const sign = (n: bigint) => (n < 0n ? `${n}` : `+${n}`);

/**
 * Two special statics (static-locals.ts) are alike when their names agree
 * without numbers and their contents agree but for a line-number field.
 * Memoised in the correlation: every reference to one asks again.
 */
export function sameSpecialStatic(o: ObjectView, so: SymbolIndex, p: ObjectView, sp: SymbolIndex, c: Correlation): boolean {
  const key = `${so}:${sp}`;
  const known = c.specialSame.get(key);
  if (known !== undefined) return known;
  if (canonicalName(o.symbol(so).name) !== canonicalName(p.symbol(sp).name)) {
    c.specialSame.set(key, false);
    return false;
  }
  const eo = o.extentOf(so);
  const ep = p.extentOf(sp);
  if (!eo || !ep) {
    c.specialSame.set(key, false);
    return false;
  }
  c.specialSame.set(key, true); // a table pointing back at itself is alike unless something else differs
  const line = lineFieldOf(p, sp);
  const bo = o.bytesOf(eo);
  const bp = p.bytesOf(ep);
  const lineOnly = (d: Difference) => {
    if (!line || d.kind !== 'bytes' || d.offset < line.offset || (d.to ?? d.offset + 1) > line.offset + 4) return false;
    if (bo.length < line.offset + 4 || bp.length < line.offset + 4) return false;
    const read = (b: Buffer) => (p.obj.littleEndian ? b.readUInt32LE(line.offset) : b.readUInt32BE(line.offset));
    return ((read(bo) ^ read(bp)) & ~line.mask) === 0;
  };
  const same = compareExtents(o, eo, p, ep, c).every(lineOnly);
  c.specialSame.set(key, same);
  return same;
}
