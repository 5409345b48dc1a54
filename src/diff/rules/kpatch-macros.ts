import { type SectionIndex, type SymbolIndex } from '../../elf/index.js';
import type { ObjectView } from '../model/object-view.js';

/** kpatch's patch-author API (kpatch-macros.h), as found in a patched object. */
export interface PatchDirectives {
  /** KPATCH_IGNORE_FUNCTION: changes to these are ignored. */
  ignoredFunctions: Set<string>;
  /** KPATCH_IGNORE_SECTION: changes in these sections are ignored. */
  ignoredSections: Set<string>;
  /**
   * KPATCH_IGNORE_STATIC (`.kpatch.ignore.statics`, a pointer to the name): static
   * locals of these names (as the source spells them, gcc's `.N` removed) may
   * lose their references or their twin: the patch no longer needs their state.
   */
  ignoredStatics: Set<string>;
  /** KPATCH_FORCE_UNSAFE: patch these even where the differ would refuse. */
  forcedFunctions: Set<string>;
  callbacks: Callback[];
  /** The sections the directives live in: never compared, never included as code or data. */
  directiveSections: Set<SectionIndex>;
}

export type CallbackKind = 'pre_patch' | 'post_patch' | 'pre_unpatch' | 'post_unpatch';
export interface Callback {
  kind: CallbackKind;
  function: string;
  sym: SymbolIndex;
}

const CALLBACK_KINDS: readonly CallbackKind[] = ['pre_patch', 'post_patch', 'pre_unpatch', 'post_unpatch'];

/** Reads the directive sections of a patched object: each entry is a pointer at its start. */
export function readDirectives(v: ObjectView): PatchDirectives {
  const d: PatchDirectives = {
    ignoredFunctions: new Set(),
    ignoredSections: new Set(),
    ignoredStatics: new Set(),
    forcedFunctions: new Set(),
    callbacks: [],
    directiveSections: new Set(),
  };
  const pointers = (name: string) => {
    const out: Array<{ sym?: SymbolIndex; text?: string }> = [];
    for (const idx of v.obj.sectionsNamed(name)) {
      d.directiveSections.add(idx);
      for (const r of v.obj.relocationsFor(idx)) d.directiveSections.add(r);
      const e = v.relocationsIn(idx, 0, Number.MAX_SAFE_INTEGER);
      if (!e) continue;
      for (const k of e.entries) {
        const t = v.target(e.table, k, idx);
        if (t.kind === 'symbol') out.push({ sym: t.sym });
        else if (t.kind === 'string') out.push({ text: t.text });
      }
    }
    return out;
  };
  for (const p of pointers('.kpatch.ignore.functions')) if (p.sym !== undefined) d.ignoredFunctions.add(v.symbol(p.sym).name);
  for (const p of pointers('.kpatch.force')) if (p.sym !== undefined) d.forcedFunctions.add(v.symbol(p.sym).name);
  for (const p of pointers('.kpatch.ignore.sections')) if (p.text !== undefined) d.ignoredSections.add(p.text);
  for (const p of pointers('.kpatch.ignore.statics')) if (p.text !== undefined) d.ignoredStatics.add(p.text);
  for (const kind of CALLBACK_KINDS) {
    // struct { callback; objname; }: only the callback (offset 0 of each entry) names code.
    for (const p of pointers(`.kpatch.callbacks.${kind}`)) {
      if (p.sym !== undefined) d.callbacks.push({ kind, function: v.symbol(p.sym).name, sym: p.sym });
    }
  }
  // The per-directive variables (`__kpatch_ignore_func_foo`…) and their strings are not patch data.
  return d;
}
