import {
  type ElfObject,
  type ElfSymbol,
  type RelocationTable,
  SHN,
  SHT,
  STB,
  STT,
  type SectionIndex,
  removeSections,
} from '../elf/index.js';
import { archRules, type FtraceEntry } from '../diff/arch.js';
import { suffixesOf } from '../diff/model/names.js';
import type { DiffMetadata } from '../diff/output/output.js';
import { type EntryRelocation, ftraceEntrySpan, startsWithFtraceEntry } from '../diff/rules/ftrace-entry.js';
import { specialSections, specialSectionNames } from '../diff/rules/special-sections.js';
import { type GeneratorProblem, problem } from './problems.js';
import { klpSymbolName, type ResolveContext, type Resolution, resolveSymbol } from './resolve.js';
import { dropEntries } from './table-entries.js';

/** A function the livepatch replaces: how the kernel finds the old one, and the symbol of the new one. */
export interface PatchedFunction {
  /** The running kernel's name and sympos of the old function. */
  oldName: string;
  sympos: number;
  /** A global alias of the new function in the prepared object, for the hook source to take its address. */
  anchor: string;
}

export interface PreparedCallback {
  kind: 'pre_patch' | 'post_patch' | 'pre_unpatch' | 'post_unpatch';
  anchor: string;
}

export interface PreparedObject {
  /** The object as kbuild links it: klp symbols named `.klp.sym.*`, still undefined until post-link. */
  elf: ElfObject;
  object: string;
  objname: string;
  functions: PatchedFunction[];
  callbacks: PreparedCallback[];
  problems: GeneratorProblem[];
  warnings: string[];
  /** Symbol namespaces of the exports it links against (the hook must MODULE_IMPORT_NS them). */
  namespaces: string[];
}

export interface PrepareOptions {
  /** Relative path of the object in the kernel build (`fs/proc/cmdline.o`), for messages. */
  object: string;
  /** Prefix of the anchor symbols: unique per object within one livepatch. */
  anchorPrefix: string;
  /** Special-section entry sizes of the target kernel (the struct-size probe). */
  entrySizes?: ReadonlyMap<string, number>;
}

/** Keys whose sites the kernel leaves alone in livepatch modules: the site just stays off (a disabled trace or debug print). */
const DROPPABLE_KEY = /^(__tracepoint_|__UNIQUE_ID_ddebug|descriptor\.)/;
/**
 * A static call site only lets the kernel turn `call trampoline` into a direct
 * call; the trampoline itself is always rewritten to the current target. Without
 * its site entry, the patched code calls through the trampoline: the same
 * target, one jump more. So module-keyed static call sites (tracepoints in a
 * module: __SCK__tp_func_*) are dropped, never refused.
 */
const TRAMPOLINE_SECTION = '.static_call_sites';

/**
 * Turns the differ's output object into one the kernel's kbuild can link into
 * the livepatch: every symbol taken from the running kernel is either left for
 * a normal relocation (exported) or renamed to its `.klp.sym` form, and one
 * another object of the livepatch defines is left for the module's link; changed
 * functions and callbacks get global anchors; the differ's metadata goes.
 */
export function prepareObject(out: ElfObject, ctx: ResolveContext, options: PrepareOptions): PreparedObject {
  const meta = readMetadata(out, options.object);
  const objname = ctx.module?.objname ?? 'vmlinux';
  const result: PreparedObject = {
    elf: out,
    object: options.object,
    objname,
    functions: [],
    callbacks: [],
    problems: [],
    warnings: [],
    namespaces: [],
  };
  const symbols = symbolsOf(out);
  const owner = ownersOfSections(out, symbols);
  const externals = new Map(meta.externals.map((e) => [e.name, e]));

  // Resolve every undefined symbol a relocation uses, once.
  const resolved = new Map<number, Resolution>();
  out.sections.forEach((sec) => {
    if (sec.body.kind !== 'relocations') return;
    const t = sec.body.table;
    for (let k = 0; k < t.length; k++) {
      const index = t.symbols[k]!;
      const s = symbols[index]!;
      if (resolved.has(index) || s.shndx !== SHN.UNDEF || s.reserved !== 0 || s.name === '') continue;
      const ext = externals.get(s.name);
      const local = ext?.local ?? false;
      const need = {
        name: s.name,
        local,
        ...(local && meta.file ? { file: meta.file, ...(meta.neighbours ? { neighbours: meta.neighbours } : {}) } : {}),
        object: options.object,
        where: owner(sec.info),
      };
      resolved.set(index, resolveSymbol(need, ctx));
    }
  });
  const namespaces = new Set<string>();
  // 'patch' resolutions need nothing: the symbol stays undefined here and the module's link defines it.
  for (const [index, r] of resolved) {
    if (r.kind === 'problem') result.problems.push(r.problem);
    if (r.kind === 'link') {
      const ns = ctx.exports.get(symbols[index]!.name)?.namespace;
      if (ns) namespaces.add(ns);
    }
    if (r.kind === 'klp') symbols[index] = { ...symbols[index]!, name: klpSymbolName(r.objname, r.name, r.sympos), nameOffset: undefined };
  }

  result.namespaces = [...namespaces].sort();
  let elf = checkModuleReferences(out, resolved, options, result);
  addAnchors(elf, meta, ctx, options, result);
  const metaSection = elf.findSection('.klpforge.diff');
  if (metaSection !== undefined) elf = removeSections(elf, new Set([metaSection]));
  result.elf = elf;
  return result;
}

function readMetadata(out: ElfObject, object: string): DiffMetadata {
  const i = out.findSection('.klpforge.diff');
  const body = i === undefined ? undefined : out.sections[i]!.body;
  if (!body || body.kind !== 'bytes') throw new Error(`${object}: not a klpforge differ output (no .klpforge.diff section)`);
  return JSON.parse(body.data.toString('utf8')) as DiffMetadata;
}

function symbolsOf(obj: ElfObject): ElfSymbol[] {
  const symtab = obj.sections.find((s) => s.type === SHT.SYMTAB);
  if (!symtab || symtab.body.kind !== 'symtab') throw new Error('differ output without a symbol table');
  return symtab.body.symbols;
}

/** For messages: the function or table a section holds. */
function ownersOfSections(obj: ElfObject, symbols: readonly ElfSymbol[]): (section: number) => string {
  const byShndx = new Map<number, string>();
  for (const s of symbols) {
    if ((s.type === STT.FUNC || s.type === STT.OBJECT) && s.reserved === 0 && s.shndx !== 0 && !byShndx.has(s.shndx))
      byShndx.set(s.shndx, s.name);
  }
  return (section) => {
    const name = byShndx.get(section);
    return name !== undefined ? `${name}()` : `an entry of ${obj.sections[section]?.name ?? `section ${section}`}`;
  };
}

/**
 * Module symbols are resolved only when that module loads, long after the
 * kernel has read the livepatch's own special sections: such references are
 * refused, except tracepoint and dynamic-debug keys, whose sites are dropped,
 * and static call sites, whose calls then go through the trampoline.
 */
function checkModuleReferences(
  out: ElfObject,
  resolved: ReadonlyMap<number, Resolution>,
  options: PrepareOptions,
  result: PreparedObject,
): ElfObject {
  const special = specialSectionNames(out.ident.machine);
  special.add('.altinstr_replacement');
  const defs = new Map(specialSections(out.ident.machine).map((d) => [d.name, d]));
  const symbols = symbolsOf(out);
  const drops = new Map<SectionIndex, { size: number; entries: Set<number> }>();
  out.sections.forEach((sec, i) => {
    if (sec.body.kind !== 'relocations') return;
    const target = out.sections[sec.info]!;
    if (!special.has(target.name)) return;
    const def = defs.get(target.name);
    const size = def?.keyField ? (options.entrySizes?.get(target.name) ?? (def.keyField.kind === 'static key' ? 16 : 8)) : 0;
    const t = sec.body.table;
    for (let k = 0; k < t.length; k++) {
      const r = resolved.get(t.symbols[k]!);
      if (r?.kind !== 'klp' || r.objname === 'vmlinux') continue;
      const offset = Number(t.offsets[k]!);
      if (def?.keyField && offset % size === def.keyField.offset) {
        const entry = Math.floor(offset / size);
        const trampoline = target.name === TRAMPOLINE_SECTION;
        if (trampoline || DROPPABLE_KEY.test(r.name)) {
          const d = drops.get(sec.info as SectionIndex) ?? { size, entries: new Set<number>() };
          d.entries.add(entry);
          drops.set(sec.info as SectionIndex, d);
          result.warnings.push(
            `${options.object}: dropped a ${target.name} site keyed by ${r.name} of module ${r.objname}: ` +
              (trampoline
                ? 'the patched code calls through its trampoline (the same target, not inlined)'
                : 'in the patched code it stays disabled'),
          );
          continue;
        }
        const site = siteOwner(out, symbols, i as SectionIndex, entry * size);
        result.problems.push(problem.moduleStaticKey(options.object, def.keyField.kind, r.name, site, r.objname));
        continue;
      }
      result.problems.push(problem.moduleSpecialRelocation(options.object, target.name, r.name, r.objname));
    }
  });
  let elf = out;
  for (const [section, d] of drops) elf = dropEntries(elf, section, d.size, d.entries);
  return elf;
}

/** The function a special-section entry points at (its key relocation at the entry's start). */
function siteOwner(out: ElfObject, symbols: readonly ElfSymbol[], relocSection: SectionIndex, entryStart: number): string {
  const body = out.sections[relocSection]!.body;
  if (body.kind !== 'relocations') return 'a patched function';
  const t: RelocationTable = body.table;
  for (let k = 0; k < t.length; k++) {
    if (Number(t.offsets[k]!) !== entryStart) continue;
    const s = symbols[t.symbols[k]!]!;
    const fn = symbols.find((x) => x.type === STT.FUNC && x.shndx === s.shndx && x.reserved === 0);
    if (fn) return `${fn.name}()`;
  }
  return 'a patched function';
}

function addAnchors(elf: ElfObject, meta: DiffMetadata, ctx: ResolveContext, options: PrepareOptions, result: PreparedObject): void {
  const symbols = symbolsOf(elf);
  const definedFunction = new Map<string, ElfSymbol>();
  for (const s of symbols) if (s.type === STT.FUNC && s.reserved === 0 && s.shndx !== 0) definedFunction.set(s.name, s);
  const arch = archRules(elf.ident.machine);
  let n = 0;
  const anchor = (s: ElfSymbol): string => {
    const name = `${options.anchorPrefix}${n++}`;
    symbols.push({ ...s, name, bind: STB.GLOBAL, other: 0, nameOffset: undefined });
    return name;
  };
  const target = ctx.module ?? ctx.vmlinux;
  const kept = oneNamePerAddress(elf, meta.changed, definedFunction);
  for (const f of meta.changed) {
    const s = definedFunction.get(f.name);
    if (!s) {
      result.problems.push(problem.unpatchable(options.object, f.name, 'the differ output lacks its code'));
      continue;
    }
    if (!kept.has(f.name)) continue;
    // Fragments (.cold) run only as part of their parent; ftrace can redirect only what starts with its ftrace entry.
    if (suffixesOf(f.name).some((r) => r.kind === 'cold') || (arch && !startsWithFentry(elf, s, arch.ftraceEntry))) continue;
    const r = target.symbols.sympos(f.kernelName, f.local ? meta.file : '', meta.neighbours);
    if (!r.found) {
      const why =
        r.reason === 'ambiguous'
          ? `${target.objname} has several ${f.kernelName} in files named ${meta.file ?? '?'} (${r.candidates.join(', ')})`
          : `${target.objname} has no ${f.kernelName}${f.local && meta.file ? ` in ${meta.file}` : ''} (is it the kernel the source was built for?)`;
      result.problems.push(problem.unpatchable(options.object, f.kernelName, why));
      continue;
    }
    result.functions.push({ oldName: f.kernelName, sympos: r.sympos, anchor: anchor(s) });
  }
  for (const cb of meta.callbacks) {
    const s = definedFunction.get(cb.function);
    if (!s) {
      result.problems.push(problem.unpatchable(options.object, cb.function, 'callback code missing from the differ output'));
      continue;
    }
    result.callbacks.push({ kind: cb.kind as PreparedCallback['kind'], anchor: anchor(s) });
  }
  elf.reindex();
}

/**
 * Of the changed functions that are one address under several names (an
 * `alias` attribute: s390's SYSCALL_DEFINE makes `__s390x_sys_X` an alias of
 * `__se_sys_X`), the one name to patch: the one gcc named the section after,
 * else the first. The kernel must get one klp_func per address: with two, the
 * transition's stack check takes the other as an earlier patch of the same
 * function and reads its new_func from the ftrace ops' list head, an address
 * range that can match any sleeping task forever.
 */
function oneNamePerAddress(elf: ElfObject, changed: DiffMetadata['changed'], definedFunction: ReadonlyMap<string, ElfSymbol>): Set<string> {
  const byAddress = new Map<string, string>();
  for (const f of changed) {
    const s = definedFunction.get(f.name);
    if (!s) continue;
    const at = `${s.shndx}:${s.value}`;
    const held = byAddress.get(at);
    if (held === undefined || (elf.sections[s.shndx]?.name === `.text.${f.name}` && elf.sections[s.shndx]?.name !== `.text.${held}`))
      byAddress.set(at, f.name);
  }
  return new Set(byAddress.values());
}

/** Whether a function of the prepared object starts with the architecture's ftrace entry (src/diff/rules/ftrace-entry.ts). */
function startsWithFentry(elf: ElfObject, fn: ElfSymbol, rule: FtraceEntry): boolean {
  const symbols = symbolsOf(elf);
  const span = ftraceEntrySpan(rule);
  const relocations: EntryRelocation[] = [];
  for (const ri of elf.relocationsFor(fn.shndx)) {
    const body = elf.sections[ri]!.body;
    if (body.kind !== 'relocations') continue;
    const t = body.table;
    for (let k = 0; k < t.length; k++) {
      const at = Number(t.offsets[k]! - fn.value);
      if (at >= 0 && at < span) relocations.push({ offset: at, symbol: symbols[t.symbols[k]!]!.name });
    }
  }
  const code = elf.sections[fn.shndx]?.body;
  const start = Number(fn.value);
  return startsWithFtraceEntry(rule, code?.kind === 'bytes' ? code.data.subarray(start, start + span) : new Uint8Array(0), relocations);
}
