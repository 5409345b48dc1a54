import { type ElfObject, machineName, type SectionIndex, type SymbolIndex, SHN, STB, STT } from '../elf/index.js';
import { archRules, archRulesFor, supportedArches } from './arch.js';
import { compareExtents, type Difference } from './correlate/compare.js';
import { correlate } from './correlate/correlate.js';
import { addSpecialEntryTargets, computeInclusion, type ExternalReference } from './output/inclusion.js';
import { type Callback, readDirectives } from './rules/kpatch-macros.js';
import { ftraceEntrySpan, startsWithFtraceEntry } from './rules/ftrace-entry.js';
import { onlyLineNumbersDiffer } from './rules/line-macros.js';
import { canonicalName, parentOf } from './model/names.js';
import { ObjectView } from './model/object-view.js';
import { CallGraph, explainChange, ipaRaEnabled } from './rules/optimizations.js';
import { refuse, type Refusal } from './refusals.js';
import { type EntrySizes, indexSpecialEntries, specialEntriesDiffer } from './rules/special-entries.js';
import { checkData, checkUnusedChangedSections, lostStaticReferences, metadataSymbols } from './output/data-changes.js';
import { buildOutputObject } from './output/output.js';
import { classifySection } from './model/section-kinds.js';

export interface DiffOptions {
  /** Special-section entry sizes given by the user (section name → bytes). */
  entrySizes?: EntrySizes;
  /** The gcc command line that built the object (kbuild's .o.cmd), to know whether IPA-RA was on. */
  compilerFlags?: string;
  /** Also build the output object for the module generator (`result.output`). */
  output?: boolean;
}

export interface FunctionReport {
  /** The name in the patched object. */
  name: string;
  section: string;
  firstDifference?: { offset: number; what: string };
  /** What gcc did that explains or endangers this change. */
  optimizations: string[];
  /** Callers in the same object that IPA-RA may have let rely on this function's register use. */
  exposedCallers?: string[];
  forced?: boolean;
  /** Parts gcc split out of this function (`.cold`): patched with it, never on their own. */
  parts?: string[];
}

export type Outcome = 'changed' | 'no-change' | 'unsupported';

export interface DiffResult {
  outcome: Outcome;
  changed: FunctionReport[];
  new: FunctionReport[];
  /** Functions whose only difference is a `__LINE__` value: not changed. */
  lineOnly: string[];
  /** Functions of the original with no twin in the patched object. */
  vanished: string[];
  /**
   * New static functions no included code calls: left out of the module
   * (kpatch includes them; they could never run).
   */
  leftOut: string[];
  refusals: Refusal[];
  warnings: string[];
  /** How the differ decided things it was not told (inferred entry sizes, assumptions). */
  notes: string[];
  callbacks: Callback[];
  included: { functions: string[]; data: string[]; sections: string[] };
  externals: ExternalReference[];
  /** The included code and data as an object for the generator, when asked for and patchable. */
  output?: ElfObject;
}

/** Compares two builds of one object, function by function. Pure: reads the models, writes nothing. */
export function diffObjects(origObj: ElfObject, patchedObj: ElfObject, options: DiffOptions = {}): DiffResult {
  const result: DiffResult = {
    outcome: 'no-change',
    changed: [],
    new: [],
    lineOnly: [],
    vanished: [],
    leftOut: [],
    refusals: [],
    warnings: [],
    notes: [],
    callbacks: [],
    included: { functions: [], data: [], sections: [] },
    externals: [],
  };
  const arch = archRulesFor({ machine: patchedObj.ident.machine, littleEndian: patchedObj.littleEndian });
  if (!arch) {
    const order = archRules(patchedObj.ident.machine) ? (patchedObj.littleEndian ? ' (little-endian)' : ' (big-endian)') : '';
    result.refusals.push(refuse.unsupportedArch(`${machineName(patchedObj.ident.machine)}${order}`, supportedArches()));
    result.outcome = 'unsupported';
    return result;
  }
  const o = new ObjectView(origObj, arch, 'original');
  const p = new ObjectView(patchedObj, arch, 'patched');
  const c = correlate(o, p);
  const directives = readDirectives(p);
  result.callbacks = directives.callbacks;
  const given = options.entrySizes ?? new Map();
  const so = indexSpecialEntries(o, given);
  const sp = indexSpecialEntries(p, given);
  for (const [name, s] of sp.sizes)
    if (s.source === 'inferred') result.notes.push(`entry size of ${name} inferred from its relocations: ${s.size} bytes`);
  for (const name of new Set([...so.unknownSize, ...sp.unknownSize])) {
    result.warnings.push(`entry size of ${name} unknown (give it with --entry-size ${name}=N): its entries were not compared`);
  }
  c.guesses.forEach((g) => result.warnings.push(`correlation guessed: ${g}`));
  c.rebound.forEach((n) =>
    result.notes.push(`${n}: its binding changed (global ↔ static); matched by name, known to the running kernel by its old binding`),
  );
  // Statics only a metadata table points at (printk's `_entry`/`_entry_ptr`) need no twin: they are not patched.
  const metaO = metadataSymbols(o);
  const metaP = metadataSymbols(p);
  // KPATCH_IGNORE_STATIC names a static the author vouches for: its copies need no twin.
  const ignoredStatic = (name: string) => directives.ignoredStatics.has(canonicalName(name));
  c.ambiguousStaticLocals
    .filter((s) => !(s.side === 'original' ? metaO : metaP).has(s.name) && !ignoredStatic(s.name))
    .forEach((s) => result.refusals.push(refuse.staticLocalUnmatched(s.name, s.side)));

  const ignoredSection = (name: string) => directives.ignoredSections.has(name);
  const changed = new Map<SymbolIndex, FunctionReport>();
  const fresh: SymbolIndex[] = [];
  const callbackSyms = new Set(directives.callbacks.map((cb) => cb.sym));

  // Functions: compare each with its twin.
  patchedObj.symbols.forEach((s, i) => {
    const sym = i as SymbolIndex;
    if (s.type !== STT.FUNC || s.shndx === SHN.UNDEF || s.reserved !== 0) return;
    const section = patchedObj.sections[s.shndx]!.name;
    if (directives.directiveSections.has(s.shndx) || directives.ignoredFunctions.has(s.name) || ignoredSection(section)) return;
    const twin = c.twinOfPatched.get(sym);
    if (twin === undefined) {
      if (!callbackSyms.has(sym)) fresh.push(sym);
      return;
    }
    const eo = o.extentOf(twin)!;
    const ep = p.extentOf(sym)!;
    let diffs: Difference[] = compareExtents(o, eo, p, ep, c);
    if (diffs.length > 0 && onlyLineNumbersDiffer(diffs, o, eo, p, ep)) {
      result.lineOnly.push(s.name);
      diffs = [];
    }
    if (diffs.length === 0) {
      const special = specialEntriesDiffer(o, so.byFunction.get(twin) ?? [], p, sp.byFunction.get(sym) ?? [], c);
      if (special) diffs = [{ offset: 0, kind: 'relocation', what: `its ${special} entries changed` }];
    }
    if (diffs.length > 0)
      changed.set(sym, { name: s.name, section, firstDifference: { offset: diffs[0]!.offset, what: diffs[0]!.what }, optimizations: [] });
  });

  // A changed child (.cold, .part) is a change to its parent, and parent and children travel together.
  for (const [, report] of [...changed]) {
    const parent = parentOf(report.name);
    const ps = parent === undefined ? undefined : p.obj.symbolsNamed(parent).find((k) => p.symbol(k).type === STT.FUNC);
    if (ps !== undefined && !changed.has(ps)) {
      changed.set(ps, {
        name: parent!,
        section: p.sectionName(p.symbol(ps).shndx),
        firstDifference: { offset: 0, what: `its child ${report.name} changed` },
        optimizations: [],
      });
    }
  }
  const children = new Map<string, SymbolIndex[]>();
  patchedObj.symbols.forEach((cs, k) => {
    const parent = cs.type === STT.FUNC ? parentOf(cs.name) : undefined;
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), k as SymbolIndex]);
  });
  for (const [sym] of [...changed]) {
    const name = p.symbol(sym).name;
    for (const child of children.get(name) ?? []) {
      if (changed.has(child) || c.twinOfPatched.get(child) === undefined) continue;
      changed.set(child, {
        name: p.symbol(child).name,
        section: p.sectionName(p.symbol(child).shndx),
        firstDifference: { offset: 0, what: `part of ${name}, which changed` },
        optimizations: [],
      });
    }
  }

  // Refusals that concern changed functions.
  const graphO = new CallGraph(o);
  const graphP = new CallGraph(p);
  const twinHasFentry = (sym: SymbolIndex) => {
    const twin = c.twinOfPatched.get(sym);
    return twin === undefined || hasFentry(o, twin);
  };
  for (const [sym, report] of changed) {
    const kind = classifySection(report.section);
    const forced = directives.forcedFunctions.has(report.name);
    if (kind === 'init' && !forced) result.refusals.push(refuse.initChanged(report.name, report.section));
    // ftrace redirects the running kernel's copy: it is the original that needs the ftrace entry, and the new one too.
    else if (!forced && kind !== 'init' && parentOf(report.name) === undefined && (!hasFentry(p, sym) || !twinHasFentry(sym))) {
      const cause =
        kind === 'noinstr'
          ? 'noinstr code'
          : "notrace: the kernel's inline implies notrace, so a static inline function gcc kept out of line has none; or its file is built without ftrace";
      const callers = [...(graphP.callers.get(report.name) ?? [])].map((k) => p.symbol(k).name).sort();
      result.refusals.push(refuse.noFentry(report.name, report.section, p.arch.ftraceEntry.describe, cause, callers));
    }
    if (forced) {
      report.forced = true;
      result.warnings.push(`${report.name}: KPATCH_FORCE_UNSAFE given, patched without the usual checks`);
    }
  }

  // Data: a data object the running kernel already holds must not change.
  checkData(o, p, c, directives.directiveSections, ignoredSection, result);

  // Functions of the original with no twin: gone (inlined everywhere, dead code) or renamed.
  origObj.symbols.forEach((s, i) => {
    if (s.type === STT.FUNC && s.shndx !== SHN.UNDEF && !c.twinOfOrig.has(i as SymbolIndex)) result.vanished.push(s.name);
  });

  // What the new code needs. New globals are kept whether or not this object uses them: another
  // object of the same patch may (references between the patch's objects resolve inside the module).
  const newGlobals = fresh.filter((f) => p.symbol(f).bind !== STB.LOCAL && classifySection(p.sectionName(p.symbol(f).shndx)) === 'other');
  newGlobals.push(...newGlobalData(p, c, directives.directiveSections));
  const roots = [...changed.keys(), ...callbackSyms, ...newGlobals];
  // What the running kernel calls a symbol: its name in the original build (statics are renumbered between builds).
  const kernelSymbol = (sym: SymbolIndex) => {
    const twin = c.twinOfPatched.get(sym);
    return twin !== undefined ? o.symbol(twin) : p.symbol(sym);
  };
  const kernelName = (sym: SymbolIndex) => kernelSymbol(sym).name;
  const kernelLocal = (sym: SymbolIndex) => kernelSymbol(sym).bind === STB.LOCAL;
  const inclusion = computeInclusion(p, c, roots, new Set(changed.keys()), { name: kernelName, local: kernelLocal });
  addSpecialEntryTargets(p, inclusion, (fn) => sp.byFunction.get(fn) ?? []);
  for (const sym of fresh) {
    const s = p.symbol(sym);
    if (!inclusion.functions.has(sym)) continue;
    result.new.push({ name: s.name, section: p.sectionName(s.shndx), optimizations: explainChange(o, graphO, undefined, p, graphP, sym) });
  }
  result.leftOut = fresh
    .filter((f) => !inclusion.functions.has(f))
    .map((f) => p.symbol(f).name)
    .sort();
  if (result.leftOut.length > 0)
    result.notes.push(`new static functions no changed function calls, left out: ${result.leftOut.join(', ')}`);
  const ignoredFnSections = new Set<SectionIndex>();
  for (const name of directives.ignoredFunctions) {
    for (const k of p.obj.symbolsNamed(name)) {
      const e = p.extentOf(k);
      const r = e && p.relocationsIn(e.section, e.start, e.end);
      for (const j of r?.entries ?? []) {
        const t = p.target(r!.table, j, e!.section);
        if (t.kind !== 'symbol') ignoredFnSections.add(t.section);
      }
    }
  }
  checkUnusedChangedSections(o, p, c, inclusion.sections, new Set([...directives.directiveSections, ...ignoredFnSections]), result);
  for (const s of inclusion.writableAnonymous) {
    result.refusals.push(
      refuse.dataChanged(p.sectionName(s), p.sectionName(s), 'writable data without a symbol is referenced by patched code'),
    );
  }

  const ipaRa = ipaRaEnabled(options.compilerFlags);
  if (!ipaRa.known) result.notes.push("compiler flags unknown: assumed IPA-RA was on (gcc's default at -O2/-Os)");
  for (const [sym, report] of changed) {
    const twin = c.twinOfPatched.get(sym);
    report.optimizations = explainChange(o, graphO, twin, p, graphP, sym);
    if (twin !== undefined) {
      for (const lost of lostStaticReferences(o, twin, p, sym, c).filter((n) => !ignoredStatic(n))) {
        result.warnings.push(
          `${report.name} no longer references static local ${lost}, which still exists: check nothing else relies on the state it kept`,
        );
      }
    }
    // An old version that calls out of the object (or through a retpoline thunk) already clobbered every
    // call-clobbered register, as far as gcc knew: its callers could rely on nothing more than the ABI.
    if (!ipaRa.on || twin === undefined || callsOut(o, graphO, twin)) continue;
    const callers = [...(graphO.callers.get(o.symbol(twin).name) ?? [])]
      .map((k) => o.symbol(k).name)
      .filter((n) => ![...changed.values()].some((r) => r.name === n));
    if (callers.length > 0) {
      report.exposedCallers = callers.sort();
      result.warnings.push(
        `IPA-RA: ${report.name} changed; its unpatched callers ${callers.join(', ')} may rely on registers the old ${report.name} left untouched: check the new code clobbers no more, or patch the callers too`,
      );
    }
  }

  result.changed = [...changed.values()].sort((a, b) => a.name.localeCompare(b.name));
  result.new.sort((a, b) => a.name.localeCompare(b.name));
  foldParts(result);
  result.included = {
    functions: [...inclusion.functions].map((k) => p.symbol(k).name).sort(),
    data: [...inclusion.data].map((k) => p.symbol(k).name).sort(),
    sections: [...inclusion.sections].map((k) => p.sectionName(k)).sort(),
  };
  result.externals = [...inclusion.externals.values()].sort((a, b) => a.name.localeCompare(b.name));
  // New globals and callbacks are something to load even when no function changed (kpatch's callback-only patches).
  const something = result.changed.length > 0 || newGlobals.length > 0 || result.callbacks.length > 0;
  result.outcome = result.refusals.length > 0 ? 'unsupported' : something ? 'changed' : 'no-change';
  if (options.output && result.outcome === 'changed') {
    const file = patchedObj.symbols.find((s) => s.type === STT.FILE)?.name;
    const neighbours = [
      ...new Set(
        origObj.symbols
          .filter((s) => s.bind === STB.LOCAL && (s.type === STT.FUNC || s.type === STT.OBJECT) && s.name !== '')
          .map((s) => s.name),
      ),
    ].sort();
    result.output = buildOutputObject(
      p,
      inclusion,
      sp,
      {
        ...(file ? { file } : {}),
        neighbours,
        changed: [...changed.keys()]
          .map((k) => ({ name: p.symbol(k).name, kernelName: kernelName(k), local: kernelLocal(k) }))
          .sort((a, b) => a.name.localeCompare(b.name)),
        new: result.new.map((f) => f.name),
        callbacks: result.callbacks.map((cb) => ({ kind: cb.kind, function: cb.function })),
        externals: result.externals.map((e) => ({ ...e, ...(e.local && file ? { file } : {}) })),
      },
      kernelName,
    );
  }
  return result;
}

/**
 * Reports list whole functions: a part (`.cold`) goes under its parent's
 * `parts`, changed or new, and is never reported on its own.
 */
function foldParts(result: DiffResult): void {
  const byName = new Map([...result.changed, ...result.new].map((r) => [r.name, r]));
  const isPart = (r: FunctionReport) => {
    const parent = parentOf(r.name);
    const owner = parent === undefined ? undefined : byName.get(parent);
    if (!owner) return false;
    owner.parts = [...(owner.parts ?? []), r.name].sort();
    return true;
  };
  result.changed = result.changed.filter((r) => !isPart(r));
  result.new = result.new.filter((r) => !isPart(r));
}

/** New global data objects (not the patch-author directives, not symbol tables of exports): kept for other objects. */
function newGlobalData(p: ObjectView, c: ReturnType<typeof correlate>, directiveSections: ReadonlySet<SectionIndex>): SymbolIndex[] {
  const out: SymbolIndex[] = [];
  p.obj.symbols.forEach((s, i) => {
    const sym = i as SymbolIndex;
    if (s.type !== STT.OBJECT || s.bind === STB.LOCAL || s.shndx === SHN.UNDEF || s.reserved !== 0 || c.twinOfPatched.has(sym)) return;
    if (directiveSections.has(s.shndx) || classifySection(p.sectionName(s.shndx)) !== 'other') return;
    out.push(sym);
  });
  return out;
}

/** Whether `fn` calls a function not defined in its object, whose register use gcc cannot know. */
function callsOut(v: ObjectView, graph: CallGraph, fn: SymbolIndex): boolean {
  for (const name of graph.callees.get(fn) ?? []) {
    if (
      !v.obj.symbolsNamed(name).some((k) => {
        const s = v.symbol(k);
        return s.shndx !== SHN.UNDEF && s.reserved === 0;
      })
    )
      return true;
  }
  return false;
}

/** Whether a function starts with its architecture's ftrace entry (arch.ts: ftraceEntry). */
function hasFentry(p: ObjectView, sym: SymbolIndex): boolean {
  const e = p.extentOf(sym);
  if (!e) return false;
  const span = ftraceEntrySpan(p.arch.ftraceEntry);
  const r = p.relocationsIn(e.section, e.start, e.start + span);
  const relocations = Array.from(r?.entries ?? [], (k) => {
    const t = p.target(r!.table, k, e.section);
    return { offset: Number(r!.table.offsets[k]!) - e.start, symbol: t.kind === 'symbol' ? p.symbol(t.sym).name : '' };
  });
  return startsWithFtraceEntry(p.arch.ftraceEntry, p.bytesOf(e).subarray(0, span), relocations);
}
