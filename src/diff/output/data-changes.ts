import { type SectionIndex, type SymbolIndex, SHF, SHN, STT } from '../../elf/index.js';
import { compareExtents } from '../correlate/compare.js';
import type { Correlation } from '../correlate/correlate.js';
import type { DiffResult } from '../diff.js';
import type { ObjectView } from '../model/object-view.js';
import { refuse } from '../refusals.js';
import { classifySection } from '../model/section-kinds.js';
import { specialSectionNames, specialSections } from '../rules/special-sections.js';

/**
 * Refuses changes to data the running kernel already holds. Exempt: data
 * only described by metadata tables (printk index records), debugging
 * descriptors, directive variables, ignored sections and the special
 * sections themselves (compared per function instead).
 */
export function checkData(
  o: ObjectView,
  p: ObjectView,
  c: Correlation,
  directiveSections: ReadonlySet<SectionIndex>,
  ignoredSection: (name: string) => boolean,
  result: DiffResult,
): void {
  const special = specialSectionNames(p.obj.ident.machine);
  const metadataTargets = metadataReferenced(p);
  p.obj.symbols.forEach((s, i) => {
    const sym = i as SymbolIndex;
    if (s.type !== STT.OBJECT || s.shndx === SHN.UNDEF || s.reserved !== 0) return;
    const section = p.obj.sections[s.shndx]!;
    if (directiveSections.has(s.shndx) || ignoredSection(section.name) || special.has(section.name)) return;
    const kind = classifySection(section.name);
    if (kind === 'ignored' || kind === 'descriptor' || metadataTargets.has(sym)) return;
    if ((section.flags & SHF.STRINGS) !== 0n) return;
    const twin = c.twinOfPatched.get(sym);
    if (twin === undefined) return;
    const diffs = compareExtents(o, o.extentOf(twin)!, p, p.extentOf(sym)!, c);
    if (diffs.length === 0) return;
    const what = `${diffs[0]!.what} at offset ${diffs[0]!.offset}`;
    if (kind === 'init') return; // boot-time data: gone after boot, nothing to patch
    if (p.isWritable(s.shndx)) result.refusals.push(refuse.dataChanged(s.name, section.name, what));
    else result.refusals.push(refuse.rodataChanged(s.name, section.name, what));
  });
}

/** Names of the objects that are metadata: in special or descriptor sections, or only pointed at by a metadata table. */
export function metadataSymbols(v: ObjectView): Set<string> {
  const special = specialSectionNames(v.obj.ident.machine);
  const out = new Set<string>();
  for (const sym of metadataReferenced(v)) out.add(v.symbol(sym).name);
  v.obj.symbols.forEach((s) => {
    const sec = s.reserved === 0 && s.shndx !== SHN.UNDEF ? v.obj.sections[s.shndx] : undefined;
    if (sec && (special.has(sec.name) || classifySection(sec.name) === 'descriptor')) out.add(s.name);
  });
  return out;
}

/** Objects that only metadata tables (printk's format index) point at. */
function metadataReferenced(p: ObjectView): Set<SymbolIndex> {
  const out = new Set<SymbolIndex>();
  for (const def of specialSections(p.obj.ident.machine)) {
    if (!def.metadata) continue;
    for (const idx of p.obj.sectionsNamed(def.name)) {
      const r = p.relocationsIn(idx, 0, Number.MAX_SAFE_INTEGER);
      for (const k of r?.entries ?? []) {
        const t = p.target(r!.table, k, idx);
        if (t.kind === 'symbol') out.add(t.sym);
      }
    }
  }
  return out;
}

/**
 * Changed anonymous data (no named object inside, not strings, not a special
 * or descriptor section) that no included function uses: the change would be
 * silently lost, so it is refused.
 */
export function checkUnusedChangedSections(
  o: ObjectView,
  p: ObjectView,
  c: Correlation,
  included: ReadonlySet<SectionIndex>,
  skip: ReadonlySet<SectionIndex>,
  result: DiffResult,
): void {
  const special = specialSectionNames(p.obj.ident.machine);
  p.obj.sections.forEach((s, i) => {
    const idx = i as SectionIndex;
    // Indirection slots (ppc64 `.toc`) are compared through the code that loads them.
    if (skip.has(idx) || included.has(idx) || p.symbolsIn(idx).length > 0 || p.isIndirect(idx)) return;
    if ((s.flags & SHF.ALLOC) === 0n || (s.flags & SHF.EXECINSTR) !== 0n || (s.flags & (SHF.STRINGS | SHF.MERGE)) !== 0n) return;
    if (special.has(s.name) || classifySection(s.name) !== 'other') return;
    const twin = c.sectionTwinOfPatched.get(idx);
    if (twin === undefined) return;
    const a = o.obj.sections[twin]!.body;
    const b = s.body;
    const same =
      a.kind === 'bytes' && b.kind === 'bytes'
        ? a.data.equals(b.data)
        : a.kind === 'nobits' && b.kind === 'nobits'
          ? a.size === b.size
          : true;
    if (!same) result.refusals.push(refuse.unusedChangedSection(s.name));
  });
}

/** Static locals a function referenced before the patch and no longer does, while they still exist: worth a warning. */
export function lostStaticReferences(o: ObjectView, symO: SymbolIndex, p: ObjectView, symP: SymbolIndex, c: Correlation): string[] {
  const statics = (v: ObjectView, sym: SymbolIndex) => {
    const e = v.extentOf(sym);
    const r = e && v.relocationsIn(e.section, e.start, e.end);
    const out = new Set<SymbolIndex>();
    for (const k of r?.entries ?? []) {
      const t = v.target(r!.table, k, e!.section);
      if (t.kind === 'symbol' && v.symbol(t.sym).type === STT.OBJECT && v.symbol(t.sym).bind === 0 && /\.\d+$/.test(v.symbol(t.sym).name))
        out.add(t.sym);
    }
    return out;
  };
  const after = statics(p, symP);
  const lost: string[] = [];
  for (const s of statics(o, symO)) {
    const twin = c.twinOfOrig.get(s);
    if (twin !== undefined && !after.has(twin)) lost.push(p.symbol(twin).name);
  }
  return lost;
}
