import { type SectionIndex, type SymbolIndex, SHF, SHN, STT } from '../elf/index.js';
import { compareExtents } from './compare.js';
import type { Correlation } from './correlate.js';
import type { DiffResult } from './diff.js';
import type { ObjectView } from './object-view.js';
import { refuse } from './refusals.js';
import { classifySection } from './section-kinds.js';
import type { SpecialIndex } from './special-entries.js';
import { specialSections } from './special-sections.js';

/**
 * Refuses changes to data the running kernel already holds. Exempt: data
 * only described by metadata tables (printk index records), debugging
 * descriptors, directive variables, ignored sections and the special
 * sections themselves (compared per function instead).
 */
export function checkData(
  o: ObjectView, p: ObjectView, c: Correlation, directiveSections: ReadonlySet<SectionIndex>,
  ignoredSection: (name: string) => boolean, sp: SpecialIndex, result: DiffResult,
): void {
  void sp;
  const special = new Set(specialSections(p.obj.ident.machine).map((d) => d.name));
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
    if ((section.flags & SHF.WRITE) !== 0n) result.refusals.push(refuse.dataChanged(s.name, section.name, what));
    else result.refusals.push(refuse.rodataChanged(s.name, section.name, what));
  });
}

/** Names of the objects that are metadata: in special or descriptor sections, or only pointed at by a metadata table. */
export function metadataSymbols(v: ObjectView): Set<string> {
  const special = new Set(specialSections(v.obj.ident.machine).map((d) => d.name));
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
