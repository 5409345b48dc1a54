import type { SectionIndex } from '../../elf/index.js';
import { sameTarget } from '../correlate/compare.js';
import type { Correlation } from '../correlate/correlate.js';
import { type ObjectView, sectionSize, type Target } from '../model/object-view.js';
import { specialSections } from './special-sections.js';

type SectionTarget = Extract<Target, { kind: 'section' }>;

/**
 * Code without symbols that special entries point into, x86's
 * `.altinstr_replacement`: one section for every function of a file, so a
 * replacement added to one function moves the others' offsets and changes
 * the section's bytes. Each entry's piece runs from its offset to the next
 * offset any entry points at (or the section's end); two entries name the
 * same replacement when their pieces match, bytes and relocation targets,
 * wherever the file put them.
 */
export function sameReplacement(o: ObjectView, to: SectionTarget, p: ObjectView, tp: SectionTarget, c: Correlation): boolean {
  if (!o.isExec(to.section) || !p.isExec(tp.section) || o.sectionName(to.section) !== p.sectionName(tp.section)) return false;
  const a = piece(o, to);
  const b = piece(p, tp);
  if (a === undefined || b === undefined || a.end - a.start !== b.end - b.start) return false;
  const ro = o.relocationsIn(to.section, a.start, a.end);
  const rp = p.relocationsIn(tp.section, b.start, b.end);
  const eo = ro?.entries ?? [];
  const ep = rp?.entries ?? [];
  if (eo.length !== ep.length) return false;
  const masked = new Set<number>();
  for (let k = 0; k < eo.length; k++) {
    const at = Number(ro!.table.offsets[eo[k]!]!) - a.start;
    if (at !== Number(rp!.table.offsets[ep[k]!]!) - b.start || ro!.table.types[eo[k]!] !== rp!.table.types[ep[k]!]) return false;
    if (!sameTarget(o, o.target(ro!.table, eo[k]!, to.section), p, p.target(rp!.table, ep[k]!, tp.section), c)) return false;
    const width = o.arch.relocFieldSize.get(ro!.table.types[eo[k]!]!) ?? 4;
    for (let w = 0; w < width; w++) masked.add(at + w);
  }
  const bo = bytesOf(o, to.section);
  const bp = bytesOf(p, tp.section);
  for (let i = 0; i < a.end - a.start; i++) if (!masked.has(i) && bo[a.start + i] !== bp[b.start + i]) return false;
  return true;
}

const startsCache = new WeakMap<ObjectView, Map<SectionIndex, number[]>>();

function piece(v: ObjectView, t: SectionTarget): { start: number; end: number } | undefined {
  const start = Number(t.offset);
  const starts = pieceStarts(v, t.section);
  if (!starts.includes(start)) return undefined;
  const next = starts.find((s) => s > start);
  return { start, end: next ?? sectionSize(v.obj, t.section) };
}

/** Every offset of `section` a special-section entry points at, sorted. */
function pieceStarts(v: ObjectView, section: SectionIndex): number[] {
  let bySection = startsCache.get(v);
  if (!bySection) startsCache.set(v, (bySection = collectStarts(v)));
  return bySection.get(section) ?? [];
}

function collectStarts(v: ObjectView): Map<SectionIndex, number[]> {
  const found = new Map<SectionIndex, Set<number>>();
  for (const def of specialSections(v.obj.ident.machine)) {
    for (const s of v.obj.sectionsNamed(def.name)) {
      const r = v.relocationsIn(s, 0, Number.MAX_SAFE_INTEGER);
      for (const k of r?.entries ?? []) {
        const t = v.target(r!.table, k, s);
        if (t.kind !== 'section' || !v.isExec(t.section)) continue;
        const set = found.get(t.section) ?? new Set<number>();
        set.add(Number(t.offset));
        found.set(t.section, set);
      }
    }
  }
  return new Map([...found].map(([s, offsets]) => [s, [...offsets].sort((x, y) => x - y)]));
}

function bytesOf(v: ObjectView, section: SectionIndex): Uint8Array {
  const body = v.obj.sections[section]!.body;
  return body.kind === 'bytes' ? body.data : new Uint8Array(0);
}
