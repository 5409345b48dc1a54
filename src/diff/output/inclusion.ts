import { classifySection } from '../model/section-kinds.js';
import { type SectionIndex, type SymbolIndex, SHN, STT } from '../../elf/index.js';
import type { Correlation } from '../correlate/correlate.js';
import type { ObjectView } from '../model/object-view.js';
import type { SpecialEntry } from '../rules/special-entries.js';

/** A symbol the new code uses from the running kernel (or a module): resolved by the generator. */
export interface ExternalReference {
  /** The name in the original object, hence in the running kernel (gcc renumbers statics between builds). */
  name: string;
  /** Local symbols need a klp relocation with sympos; globals may be exported. */
  local: boolean;
  kind: 'function' | 'data' | 'unknown';
}

/** How the running kernel knows a symbol of the patched object: its original name and binding (gcc renumbers statics; a patch may make a global static). */
export interface KernelNames {
  name(sym: SymbolIndex): string;
  local(sym: SymbolIndex): boolean;
}

export interface Inclusion {
  functions: Set<SymbolIndex>;
  data: Set<SymbolIndex>;
  /** Anonymous sections copied whole (string literals, constants). */
  sections: Set<SectionIndex>;
  externals: Map<string, ExternalReference>;
  /** Writable anonymous data referenced by new code: its state would fork. */
  writableAnonymous: Set<SectionIndex>;
}

/**
 * Starting from the changed and new functions, takes in what their
 * relocations need that the running kernel does not already have (new
 * functions, new data, string literals, constants) and nothing more;
 * everything else becomes a reference to the running kernel.
 */
export function computeInclusion(
  p: ObjectView,
  c: Correlation,
  roots: Iterable<SymbolIndex>,
  changed: ReadonlySet<SymbolIndex>,
  kernel: KernelNames,
): Inclusion {
  const inc: Inclusion = { functions: new Set(), data: new Set(), sections: new Set(), externals: new Map(), writableAnonymous: new Set() };
  const work: SymbolIndex[] = [];
  const take = (sym: SymbolIndex) => {
    const s = p.symbol(sym);
    const set = s.type === STT.FUNC ? inc.functions : inc.data;
    if (set.has(sym)) return;
    set.add(sym);
    work.push(sym);
  };
  for (const r of roots) take(r);

  while (work.length > 0) {
    const sym = work.pop()!;
    const e = p.extentOf(sym);
    const r = e && p.relocationsIn(e.section, e.start, e.end);
    if (!e || !r) continue;
    for (const k of r.entries) {
      const t = p.target(r.table, k, e.section);
      if (t.kind === 'string') {
        inc.sections.add(t.section);
        continue;
      }
      if (t.kind === 'section') {
        // A constant in an indirection slot (ppc64 `.toc`): the output copies the slot alone.
        if (t.via) continue;
        if (p.isWritable(t.section) && classifySection(p.sectionName(t.section)) !== 'callsite') inc.writableAnonymous.add(t.section);
        else inc.sections.add(t.section);
        continue;
      }
      const target = p.symbol(t.sym);
      const defined = target.shndx !== SHN.UNDEF || target.reserved !== 0;
      const isNew = defined && !c.twinOfPatched.has(t.sym);
      if (isNew || changed.has(t.sym)) {
        take(t.sym);
        continue;
      }
      if (t.sym === sym || (!defined && p.arch.moduleSymbols?.includes(target.name))) continue;
      const kind = target.type === STT.FUNC ? 'function' : target.type === STT.OBJECT || target.type === STT.TLS ? 'data' : 'unknown';
      const name = kernel.name(t.sym);
      inc.externals.set(name, { name, local: kernel.local(t.sym), kind });
    }
  }
  return inc;
}

/**
 * What the special-section entries of the included functions point at besides
 * their key (a bug entry's file name, an exception entry's fixup constant):
 * strings and constants go into the module with them; writable data without a
 * symbol would fork the running kernel's state, so it is marked for refusal.
 */
export function addSpecialEntryTargets(p: ObjectView, inc: Inclusion, entriesOf: (fn: SymbolIndex) => readonly SpecialEntry[]): void {
  for (const fn of inc.functions) {
    for (const e of entriesOf(fn)) {
      const r = p.relocationsIn(e.section, e.start, e.start + e.size);
      for (const k of r?.entries ?? []) {
        const t = p.target(r!.table, k, e.section);
        if (t.kind === 'string') inc.sections.add(t.section);
        else if (t.kind === 'section') {
          if (p.isWritable(t.section) && classifySection(p.sectionName(t.section)) !== 'callsite') inc.writableAnonymous.add(t.section);
          else inc.sections.add(t.section);
        }
      }
    }
  }
}
