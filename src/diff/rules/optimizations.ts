import { type SymbolIndex, STT } from '../../elf/index.js';
import { instructionBefore } from '../arch.js';
import { describeSuffixes } from '../model/names.js';
import type { ObjectView } from '../model/object-view.js';
import { ftraceCallees } from './ftrace-entry.js';

/** Direct calls and references between functions of one object, both ways. */
export class CallGraph {
  readonly callees = new Map<SymbolIndex, Set<string>>();
  readonly callers = new Map<string, Set<SymbolIndex>>();

  constructor(readonly v: ObjectView) {
    const ftrace = ftraceCallees(v.arch.ftraceEntry);
    v.obj.symbols.forEach((s, i) => {
      if (s.type !== STT.FUNC) return;
      const e = v.extentOf(i as SymbolIndex);
      const r = e && v.relocationsIn(e.section, e.start, e.end);
      if (!e || !r) return;
      const set = new Set<string>();
      for (const k of r.entries) {
        if (!v.arch.callTypes.has(r.table.types[k]!)) continue;
        const t = v.target(r.table, k, e.section);
        if (t.kind !== 'symbol' || (v.symbol(t.sym).type !== STT.FUNC && v.symbol(t.sym).type !== STT.NOTYPE)) continue;
        const name = v.symbol(t.sym).name;
        if (t.sym === i || ftrace.includes(name) || isReturnJump(v, e.section, Number(r.table.offsets[k]!), name)) continue;
        set.add(name);
        const back = this.callers.get(name) ?? new Set<SymbolIndex>();
        back.add(i as SymbolIndex);
        this.callers.set(name, back);
      }
      this.callees.set(i as SymbolIndex, set);
    });
  }
}

/** Whether the relocated field at `offset` is the target of a jump that returns (arch.ts: returnJumps). */
function isReturnJump(v: ObjectView, section: number, offset: number, name: string): boolean {
  const body = v.obj.sections[section]?.body;
  if (body?.kind !== 'bytes') return false;
  return v.arch.returnJumps.some((j) => j.symbols.includes(name) && instructionBefore(body.data, offset, [j.prefix]));
}

/** Functions sharing one body (gcc's IPA-ICF folds identical functions into aliases). */
export function foldedWith(v: ObjectView, sym: SymbolIndex): string[] {
  const s = v.symbol(sym);
  return v
    .symbolsIn(s.shndx)
    .filter((k) => k !== sym && v.symbol(k).type === STT.FUNC && v.symbol(k).value === s.value)
    .map((k) => v.symbol(k).name);
}

/**
 * What gcc did that explains (or endangers) a changed function, in words:
 * clones, calls that vanished or appeared (inlining, IPA-PURE-CONST, dead code),
 * folded bodies (IPA-ICF).
 */
export function explainChange(
  o: ObjectView,
  go: CallGraph,
  symO: SymbolIndex | undefined,
  p: ObjectView,
  gp: CallGraph,
  symP: SymbolIndex,
): string[] {
  const notes = describeSuffixes(p.symbol(symP).name);
  const folded = foldedWith(p, symP);
  if (folded.length > 0)
    notes.push(`one body under several names (IPA-ICF, or an alias attribute): also ${folded.join(', ')}; patched once`);
  if (symO === undefined) return notes;
  const before = go.callees.get(symO) ?? new Set<string>();
  const after = gp.callees.get(symP) ?? new Set<string>();
  const defined = (v: ObjectView, name: string) =>
    v.obj.symbolsNamed(name).some((k) => v.symbol(k).shndx !== 0 && v.symbol(k).type === STT.FUNC);
  const existsO = (name: string) => defined(o, name);
  // Only callees defined in this object can be inlined (no LTO): calls to others change because the patch says so.
  for (const name of before) {
    if (after.has(name)) continue;
    if (!defined(o, name)) continue;
    if (!defined(p, name))
      notes.push(`call to ${name} vanished and ${name} no longer exists (inlined everywhere, or dead-code elimination)`);
    else
      notes.push(`call to ${name} vanished (now inlined, removed by the patch, or IPA-PURE-CONST dropped a call whose result is unused)`);
  }
  for (const name of after) {
    if (before.has(name) || !defined(p, name)) continue;
    if (!existsO(name)) notes.push(`calls ${name}, which is new`);
    else notes.push(`call to ${name} appeared (no longer inlined, added by the patch, or ${name} stopped being pure/const)`);
  }
  return notes;
}

/** Whether gcc's IPA-RA was on for the object, from its kbuild command line when known. */
export function ipaRaEnabled(compilerFlags: string | undefined): { on: boolean; known: boolean } {
  if (compilerFlags === undefined) return { on: true, known: false };
  if (/(^|\s)-fno-ipa-ra(\s|$)/.test(compilerFlags) || /(^|\s)-flive-patching(=\S+)?(\s|$)/.test(compilerFlags))
    return { on: false, known: true };
  if (/(^|\s)-O0(\s|$)/.test(compilerFlags)) return { on: false, known: true };
  return { on: true, known: true };
}
