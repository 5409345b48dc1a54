import type { FtraceEntry } from '../arch.js';

/** A relocation among a function's first bytes: its offset from the function's start and the symbol it names. */
export interface EntryRelocation {
  offset: number;
  symbol: string;
}

/** How many bytes from a function's start its ftrace entry spans: what a caller must read. */
export function ftraceEntrySpan(rule: FtraceEntry): number {
  if (rule.form === 'any') return Math.max(...rule.of.map(ftraceEntrySpan));
  return rule.form === 'call' ? Math.max(...rule.relocOffsets) + 1 : rule.bytes.length;
}

/**
 * Whether a function starts with its architecture's ftrace entry, given its
 * first `ftraceEntrySpan` bytes and the relocations among them. A call form
 * needs the relocation (x86: `call __fentry__`); a nop form needs the bytes
 * and no relocation in them (s390x: `brcl 0,0`; a relocated `brcl 0,sym` shows
 * the same zero bytes in an object, but branches somewhere once linked).
 */
export function startsWithFtraceEntry(rule: FtraceEntry, code: Uint8Array, relocations: readonly EntryRelocation[]): boolean {
  if (rule.form === 'any') return rule.of.some((r) => startsWithFtraceEntry(r, code, relocations));
  if (rule.form === 'call') return relocations.some((r) => rule.relocOffsets.includes(r.offset) && rule.symbols.includes(r.symbol));
  // Relocations past the nop belong to the next instructions.
  return (
    code.length >= rule.bytes.length && rule.bytes.every((b, k) => code[k] === b) && relocations.every((r) => r.offset >= rule.bytes.length)
  );
}

/** Symbols an ftrace entry calls: not callees in a call graph. */
export function ftraceCallees(rule: FtraceEntry): readonly string[] {
  if (rule.form === 'any') return rule.of.flatMap(ftraceCallees);
  return rule.form === 'call' ? rule.symbols : [];
}
