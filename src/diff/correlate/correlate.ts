import { type SectionIndex, type SymbolIndex, SHN, STB, STT } from '../../elf/index.js';
import { canonicalName, isAnonymousLabel, isStaticLocalName } from '../model/names.js';
import { sameSpecialStatic } from './compare.js';
import { type ObjectView, sectionSize } from '../model/object-view.js';
import { isConstantSpecialStatic, isSpecialStatic } from '../rules/static-locals.js';

/** Which symbol of the original object is which of the patched one. */
export interface Correlation {
  twinOfOrig: Map<SymbolIndex, SymbolIndex>;
  twinOfPatched: Map<SymbolIndex, SymbolIndex>;
  /** patched section → original section, for sections compared as a whole (strings, special sections). */
  sectionTwinOfPatched: Map<SectionIndex, SectionIndex>;
  /** Pairs made by position among same-named candidates: worth a warning. */
  guesses: string[];
  /** Static locals with a same-named candidate on the other side that no reference could tie: never guessed. */
  ambiguousStaticLocals: Array<{ name: string; side: 'original' | 'patched' }>;
  /** Symbols whose binding the patch changed (a global made static): paired by name. */
  rebound: string[];
  /** Special statics (patched names) whose contents changed: the new code uses fresh copies. */
  untiedSpecials: string[];
  /** Memo of special-static comparisons (`orig:patched` indexes). */
  specialSame: Map<string, boolean>;
}

const CORRELATED_TYPES = new Set<number>([STT.FUNC, STT.OBJECT, STT.NOTYPE, STT.TLS, STT.FILE]);

function keyOf(v: ObjectView, i: SymbolIndex): string | undefined {
  const s = v.symbol(i);
  if (i === 0 || !CORRELATED_TYPES.has(s.type) || isAnonymousLabel(s.name) || s.name === '') return undefined;
  const scope = s.bind === STB.LOCAL ? 'L' : 'G';
  const defined = s.shndx !== SHN.UNDEF || s.reserved !== 0 ? 'D' : 'U';
  // Locals carry gcc's unstable numbers; globals are matched by their exact name.
  const name = s.bind === STB.LOCAL && s.type !== STT.FILE ? canonicalName(s.name) : s.name;
  return `${scope}${defined}${s.type === STT.NOTYPE ? STT.OBJECT : s.type}:${name}`;
}

function groupByKey(v: ObjectView): Map<string, SymbolIndex[]> {
  const groups = new Map<string, SymbolIndex[]>();
  v.obj.symbols.forEach((_s, i) => {
    const k = keyOf(v, i as SymbolIndex);
    if (k === undefined) return;
    const g = groups.get(k);
    if (g) g.push(i as SymbolIndex);
    else groups.set(k, [i as SymbolIndex]);
  });
  return groups;
}

/**
 * Pairs symbols of two builds of one object by name, ignoring gcc's numeric
 * suffixes; static locals that share a name (several `count.N`) are tied
 * through the paired functions that reference them, never by guessing.
 */
export function correlate(orig: ObjectView, patched: ObjectView): Correlation {
  const c: Correlation = {
    twinOfOrig: new Map(),
    twinOfPatched: new Map(),
    sectionTwinOfPatched: new Map(),
    guesses: [],
    ambiguousStaticLocals: [],
    untiedSpecials: [],
    specialSame: new Map(),
    rebound: [],
  };
  const pair = (o: SymbolIndex, p: SymbolIndex) => {
    c.twinOfOrig.set(o, p);
    c.twinOfPatched.set(p, o);
  };
  const go = groupByKey(orig);
  const gp = groupByKey(patched);
  const pendingStatics: Array<[SymbolIndex[], SymbolIndex[]]> = [];

  for (const [key, os] of go) {
    const ps = gp.get(key);
    if (!ps) continue;
    // Static locals (`count.N`, `__UNIQUE_ID_*N`): gcc renumbers them whenever another of the same
    // name appears, so even equal names prove nothing; they are tied through the functions using them.
    if (isRenumberedLocal(orig, os[0]!)) {
      pendingStatics.push([os, ps]);
      continue;
    }
    if (os.length === 1 && ps.length === 1) {
      pair(os[0]!, ps[0]!);
      continue;
    }
    // Same exact name on both sides, once each: take it.
    const byName = new Map<string, SymbolIndex | null>();
    for (const p of ps) {
      const n = patched.symbol(p).name;
      byName.set(n, byName.has(n) ? null : p);
    }
    const countO = new Map<string, number>();
    for (const o of os) {
      const n = orig.symbol(o).name;
      countO.set(n, (countO.get(n) ?? 0) + 1);
    }
    const leftO: SymbolIndex[] = [];
    for (const o of os) {
      const name = orig.symbol(o).name;
      const p = byName.get(name);
      if (p !== undefined && p !== null && countO.get(name) === 1 && !c.twinOfPatched.has(p)) pair(o, p);
      else leftO.push(o);
    }
    const leftP = ps.filter((p) => !c.twinOfPatched.has(p));
    if (leftO.length === 0 || leftP.length === 0) continue;
    // Other local data sharing a name is tied through its users too.
    if (orig.symbol(leftO[0]!).type !== STT.FUNC && orig.symbol(leftO[0]!).bind === STB.LOCAL) {
      pendingStatics.push([leftO, leftP]);
    } else if (leftO.length === leftP.length) {
      leftO.forEach((o, k) => pair(o, leftP[k]!));
      c.guesses.push(`${leftO.length} symbols named like ${orig.symbol(leftO[0]!).name} paired in order of appearance`);
    }
  }

  correlateAcrossBinding(orig, patched, c, pair);
  if (pendingStatics.length > 0) tieStaticLocals(orig, patched, c, pendingStatics, pair);
  correlateSections(orig, patched, c);
  untieChangedSpecials(orig, patched, c);
  return c;
}

/**
 * A global the patch makes static (or the reverse) is still the same function
 * or variable: paired by its exact name when it is the only one of that name
 * left unpaired on each side. The running kernel knows it by its old binding.
 */
function correlateAcrossBinding(
  orig: ObjectView,
  patched: ObjectView,
  c: Correlation,
  pair: (o: SymbolIndex, p: SymbolIndex) => void,
): void {
  const unpaired = (v: ObjectView, twins: ReadonlyMap<SymbolIndex, SymbolIndex>) => {
    const byName = new Map<string, SymbolIndex[]>();
    v.obj.symbols.forEach((s, i) => {
      if ((s.type !== STT.FUNC && s.type !== STT.OBJECT) || s.shndx === SHN.UNDEF || s.reserved !== 0 || s.name === '') return;
      if (twins.has(i as SymbolIndex) || isStaticLocalName(s.name)) return;
      byName.set(s.name, [...(byName.get(s.name) ?? []), i as SymbolIndex]);
    });
    return byName;
  };
  const inPatched = unpaired(patched, c.twinOfPatched);
  for (const [name, os] of unpaired(orig, c.twinOfOrig)) {
    const ps = inPatched.get(name);
    if (os.length !== 1 || ps?.length !== 1) continue;
    const [so, sp] = [orig.symbol(os[0]!), patched.symbol(ps[0]!)];
    if (so.type !== sp.type || so.bind === sp.bind) continue;
    pair(os[0]!, ps[0]!);
    c.rebound.push(name);
  }
}

/** Ties static locals through references from paired functions, until nothing more can be tied. */
function tieStaticLocals(
  orig: ObjectView,
  patched: ObjectView,
  c: Correlation,
  pending: Array<[SymbolIndex[], SymbolIndex[]]>,
  pair: (o: SymbolIndex, p: SymbolIndex) => void,
): void {
  const open = new Set<SymbolIndex>();
  const openP = new Set<SymbolIndex>();
  for (const [os, ps] of pending) {
    os.forEach((o) => open.add(o));
    ps.forEach((p) => openP.add(p));
  }
  const usersO = referencesTo(orig, open);
  const usersP = referencesTo(patched, openP);

  for (let progress = true; progress;) {
    progress = false;
    for (const [fnO, locals] of usersO) {
      const fnP = c.twinOfOrig.get(fnO);
      const localsP = fnP === undefined ? undefined : usersP.get(fnP);
      if (!localsP) continue;
      for (const o of locals) {
        if (!open.has(o)) continue;
        const name = canonicalName(orig.symbol(o).name);
        const sameO = [...locals].filter((x) => open.has(x) && canonicalName(orig.symbol(x).name) === name);
        const sameP = [...localsP].filter((x) => openP.has(x) && canonicalName(patched.symbol(x).name) === name);
        if (sameO.length === 1 && sameP.length === 1) {
          pair(o, sameP[0]!);
          open.delete(o);
          openP.delete(sameP[0]!);
          progress = true;
        } else if (
          sameO.length === sameP.length &&
          sameO.every((x) => interchangeable(orig, x)) &&
          sameP.every((x) => interchangeable(patched, x))
        ) {
          // Several of one name in one function, all empty (lockdep's `__key` in each mutex_init and
          // init_waitqueue_head when lockdep is off) or all special (each printk_ratelimited's `_rs`, each
          // WARN_ONCE's flag): no shared state to carry, so which twin is which cannot matter. Tied in
          // the order the function first uses them.
          sameO.forEach((x, k) => {
            pair(x, sameP[k]!);
            open.delete(x);
            openP.delete(sameP[k]!);
          });
          progress = true;
        }
      }
    }
  }
  // What no function uses on either side (`__func__.N` strings, records pointed at only by data) cannot be
  // tied through code: pair those by exact name, else as the one pair of a name; no code reference rides on it.
  const usedO = usedByFunctions(usersO);
  const usedP = usedByFunctions(usersP);
  const dataOnly = (set: Set<SymbolIndex>, used: Set<SymbolIndex>) => [...set].filter((k) => !used.has(k));
  const exactP = new Map<string, SymbolIndex | null>();
  for (const k of dataOnly(openP, usedP)) {
    const n = patched.symbol(k).name;
    exactP.set(n, exactP.has(n) ? null : k);
  }
  for (const o of dataOnly(open, usedO)) {
    const p = exactP.get(orig.symbol(o).name);
    if (p === undefined || p === null || !openP.has(p)) continue;
    pair(o, p);
    open.delete(o);
    openP.delete(p);
  }
  const lone = (set: Set<SymbolIndex>, v: ObjectView) => {
    const byName = new Map<string, SymbolIndex[]>();
    for (const k of set) {
      const n = canonicalName(v.symbol(k).name);
      byName.set(n, [...(byName.get(n) ?? []), k]);
    }
    return byName;
  };
  const loneP = lone(openP, patched);
  for (const [name, os] of lone(open, orig)) {
    const ps = loneP.get(name);
    if (os.length !== 1 || ps?.length !== 1 || usedO.has(os[0]!) || usedP.has(ps[0]!)) continue;
    pair(os[0]!, ps[0]!);
    open.delete(os[0]!);
    openP.delete(ps[0]!);
  }
  // Special statics left over are not ambiguous: the new code gets fresh copies of those it uses.
  const namesO = new Set([...open].map((o) => canonicalName(orig.symbol(o).name)));
  const namesP = new Set([...openP].map((p) => canonicalName(patched.symbol(p).name)));
  for (const o of open) {
    if (namesP.has(canonicalName(orig.symbol(o).name)) && !isSpecialStatic(orig, o))
      c.ambiguousStaticLocals.push({ name: orig.symbol(o).name, side: 'original' });
  }
  for (const p of openP) {
    if (namesO.has(canonicalName(patched.symbol(p).name)) && !isSpecialStatic(patched, p))
      c.ambiguousStaticLocals.push({ name: patched.symbol(p).name, side: 'patched' });
  }
}

/** Twins that may be swapped without changing what the program does: empty objects, special statics. */
function interchangeable(v: ObjectView, sym: SymbolIndex): boolean {
  return holdsNothing(v, sym) || isSpecialStatic(v, sym);
}

/**
 * A special static whose contents changed (a switch table, a rate limit's
 * interval) is not the running kernel's any more: untied, the new code gets a
 * fresh copy and the functions using it compare as changed. Constant ones are
 * untied whatever their contents: the new code always carries its own.
 */
function untieChangedSpecials(orig: ObjectView, patched: ObjectView, c: Correlation): void {
  for (const [o, p] of [...c.twinOfOrig]) {
    if (!isSpecialStatic(orig, o) || !isSpecialStatic(patched, p)) continue;
    if (isConstantSpecialStatic(patched, p)) {
      // Constant: the new code carries its own copy whether or not it changed (static-locals.ts).
      c.twinOfOrig.delete(o);
      c.twinOfPatched.delete(p);
      continue;
    }
    if (sameSpecialStatic(orig, o, patched, p, c)) continue;
    c.twinOfOrig.delete(o);
    c.twinOfPatched.delete(p);
    c.untiedSpecials.push(patched.symbol(p).name);
  }
}

/** A zero-size object in a section of its own that is empty too: nothing at its address. */
function holdsNothing(v: ObjectView, sym: SymbolIndex): boolean {
  const s = v.symbol(sym);
  return s.size === 0n && s.shndx !== SHN.UNDEF && s.reserved === 0 && sectionSize(v.obj, s.shndx) === 0;
}

function usedByFunctions(users: Map<SymbolIndex, Set<SymbolIndex>>): Set<SymbolIndex> {
  const used = new Set<SymbolIndex>();
  for (const set of users.values()) for (const s of set) used.add(s);
  return used;
}

/** A local object gcc numbers (`count.3`) or the kernel's macros number (`__UNIQUE_ID_ddebug123`). */
function isRenumberedLocal(v: ObjectView, sym: SymbolIndex): boolean {
  const s = v.symbol(sym);
  return (
    s.bind === STB.LOCAL && s.type !== STT.FUNC && s.type !== STT.FILE && (isStaticLocalName(s.name) || s.name.startsWith('__UNIQUE_ID_'))
  );
}

/** function symbol → the symbols of `wanted` its code references. */
function referencesTo(v: ObjectView, wanted: Set<SymbolIndex>): Map<SymbolIndex, Set<SymbolIndex>> {
  const users = new Map<SymbolIndex, Set<SymbolIndex>>();
  v.obj.symbols.forEach((s, i) => {
    if (s.type !== STT.FUNC) return;
    const e = v.extentOf(i as SymbolIndex);
    if (!e) return;
    const r = v.relocationsIn(e.section, e.start, e.end);
    if (!r) return;
    for (const k of r.entries) {
      const t = v.target(r.table, k, e.section);
      if (t.kind === 'symbol' && wanted.has(t.sym)) {
        const set = users.get(i as SymbolIndex) ?? new Set<SymbolIndex>();
        set.add(t.sym);
        users.set(i as SymbolIndex, set);
      }
    }
  });
  return users;
}

/** Sections without a named symbol of their own (strings, special sections) pair by canonical name. */
function correlateSections(orig: ObjectView, patched: ObjectView, c: Correlation): void {
  const index = new Map<string, SectionIndex[]>();
  orig.obj.sections.forEach((s, i) => {
    const k = canonicalName(s.name);
    index.set(k, [...(index.get(k) ?? []), i as SectionIndex]);
  });
  patched.obj.sections.forEach((s, i) => {
    if (i === 0) return;
    const candidates = index.get(canonicalName(s.name));
    if (candidates?.length === 1) c.sectionTwinOfPatched.set(i as SectionIndex, candidates[0]!);
  });
}
