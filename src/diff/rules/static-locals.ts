import { type SymbolIndex, SHN, STB, STT } from '../../elf/index.js';
import { canonicalName } from '../model/names.js';
import type { ObjectView } from '../model/object-view.js';

/**
 * Static locals the kernel's macros and gcc create in nearly every file, that
 * hold no state another function relies on. A changed function may share the
 * running kernel's copy (when its twin can be told) or use a fresh copy of its
 * own: either is correct. So they are matched where their names allow it and
 * otherwise included new, never refused. Anything not listed (`static int
 * count`) keeps the strict rule: state must be shared, or the patch refused.
 * So do DO_ONCE's `___done`/`___once_key`: a fresh copy would run the once-only
 * code again (re-seed a hash secret that live tables depend on).
 */
interface SpecialStaticRule {
  /** The name as the source writes it (gcc's `.N` and the macros' numbers removed), or a prefix of it. */
  name: string;
  prefix?: boolean;
  /** Why a fresh copy is harmless. */
  why: string;
  /** Only when the section is read-only: a writable variable of that name is someone's own state. */
  constant?: boolean;
}

const RULES: readonly SpecialStaticRule[] = [
  {
    name: '__key',
    why: 'lockdep class key: only its address matters; a fresh key is a new lock class for the locks the new code initialises',
  },
  { name: '__warned', why: 'WARN_ONCE/WARN_ON_ONCE flag (older kernels): a fresh copy warns once more' },
  { name: '__already_done', why: '*_ONCE flag (DO_ONCE_LITE): a fresh copy warns or prints once more' },
  { name: '__print_once', why: 'printk_once flag (older kernels): a fresh copy prints once more' },
  { name: '_rs', why: 'printk_ratelimited/DEFINE_RATELIMIT_STATE state: a fresh copy starts a new rate-limit window' },
  { name: 'descriptor', why: 'dynamic debug descriptor (older kernels): describes a pr_debug site' },
  { name: '__UNIQUE_ID_ddebug', why: 'dynamic debug descriptor: describes a pr_debug site' },
  { name: '__func__', why: 'the function name string', constant: true },
  { name: '__FUNCTION__', why: 'the function name string (older spelling)', constant: true },
  { name: 'symbols', why: 'trace event print table (__print_symbolic): constant', constant: true },
  { name: 'CSWTCH', why: "gcc's switch-conversion table: constant", constant: true },
  { name: '__msg', why: 'netlink extended-ack message (NL_SET_ERR_MSG): constant', constant: true },
  { name: '__flags', why: 'trace event print table (__print_flags): constant', constant: true },
  { name: '___tp_str', why: 'tracepoint_string() record: points at a constant string for the trace buffer' },
  { name: '_entry', why: 'printk index record: metadata' },
  { name: '_entry_ptr', why: 'printk index record pointer: metadata' },
  { name: '__tpstrtab_', prefix: true, why: 'tracepoint name string: constant', constant: true },
  { name: '__UNIQUE_ID_', prefix: true, why: "a kernel macro's uniquely numbered helper object" },
];

/** Sections whose objects are all such variables, whatever their names (kpatch: `.data.once`, `__verbose`). */
const SECTIONS = new Set(['.data.once', '.data.unlikely', '__verbose', '__dyndbg']);

const EXACT = new Map(RULES.filter((r) => !r.prefix).map((r) => [r.name, r]));
const PREFIXES = RULES.filter((r) => r.prefix);

/** The rule a local data symbol falls under, by its name and section; undefined for ordinary statics. */
export function specialStaticRule(name: string, section: string, writable: boolean): SpecialStaticRule | undefined {
  const base = canonicalName(name);
  const rule = EXACT.get(base) ?? PREFIXES.find((r) => base.startsWith(r.name));
  if (rule && !(rule.constant && writable)) return rule;
  if (SECTIONS.has(section)) return { name: section, why: `in ${section}, which holds only such variables` };
  return undefined;
}

/** Answers per object: every relocation comparison asks about its target. */
const answers = new WeakMap<ObjectView, Map<SymbolIndex, boolean>>();

/** Whether a symbol of an object is a special static: local data, listed by name or section. */
export function isSpecialStatic(v: ObjectView, sym: SymbolIndex): boolean {
  let known = answers.get(v);
  if (!known) answers.set(v, (known = new Map<SymbolIndex, boolean>()));
  let answer = known.get(sym);
  if (answer === undefined) known.set(sym, (answer = classify(v, sym)));
  return answer;
}

function classify(v: ObjectView, sym: SymbolIndex): boolean {
  const s = v.symbol(sym);
  if (s.bind !== STB.LOCAL || (s.type !== STT.OBJECT && s.type !== STT.NOTYPE) || s.reserved !== 0 || s.shndx === SHN.UNDEF) return false;
  return specialStaticRule(s.name, v.sectionName(s.shndx), v.isWritable(s.shndx)) !== undefined;
}

/**
 * A read-only special static (`__func__`, `CSWTCH`, `__msg`…): its contents
 * are all there is to it, so the new code always gets its own copy rather
 * than a reference to the running kernel's. The running kernel's may not be
 * findable by name at all: gcc numbers them per object (`__func__.13`), and
 * a distribution's modules are stripped of the STT_FILE symbols that would
 * tell one object's numbering from another's.
 */
export function isConstantSpecialStatic(v: ObjectView, sym: SymbolIndex): boolean {
  if (!isSpecialStatic(v, sym)) return false;
  const s = v.symbol(sym);
  const writable = v.isWritable(s.shndx);
  return !writable && specialStaticRule(s.name, v.sectionName(s.shndx), writable)?.constant === true;
}

/** The list, for documentation and `klpforge diff --json` notes. */
export function specialStaticRules(): readonly SpecialStaticRule[] {
  return RULES;
}

/**
 * A bitfield of a special static that only carries a `__LINE__` (the dynamic
 * debug descriptor's `lineno:18` after its four pointers): a line shift changes
 * it and nothing else. Byte offset of the 32-bit unit and the bits of the line.
 */
export function lineFieldOf(v: ObjectView, sym: SymbolIndex): { offset: number; mask: number } | undefined {
  const s = v.symbol(sym);
  const section = v.sectionName(s.shndx);
  if (section !== '__dyndbg' && section !== '__verbose') return undefined;
  // The first bitfield takes the low bits of its unit on little-endian machines, the high ones on big-endian.
  return { offset: 32, mask: v.obj.littleEndian ? 0x3ffff : 0xffffc000 };
}
