import { MACHINES } from '../arch/machines.js';

/**
 * The kernel's per-call-site tables, as data (in the spirit of objtool's
 * arch/x86/special.c). Each entry of such a section describes one place in
 * the code; the entries of a function are found through the `key` relocation.
 * Each machine's table is in src/diff/arch/MACHINE.ts; the generic kernel's
 * rows they share in generic-sections.ts.
 */
export interface SpecialSection {
  name: string;
  /** Entry size when neither an option nor kpatch's environment variable gives it; undefined: infer it. */
  defaultSize?: number;
  /** kpatch's environment variable for the entry size. */
  env?: string;
  /** Offset in the entry of the relocation that names the code it describes. */
  keyOffset: number;
  /** A field that only carries a line number (ignored when comparing a function's entries). */
  line?: { offset: number; size: number };
  /**
   * Entries that only describe, never change behaviour (printk format index):
   * dropped for code not included, and the data they point at is not "data".
   */
  metadata?: boolean;
  /**
   * Entries derived from the code alone by the compiler or objtool (ORC,
   * return/retpoline sites, lock prefixes, ftrace call sites): equal code gives
   * equal entries, so they are not compared, only carried.
   */
  derived?: boolean;
  /**
   * A field that names a key the site belongs to (static key, static call key):
   * the livepatch core can't apply such an entry when the key lives in a module.
   */
  keyField?: { offset: number; kind: 'static key' | 'static call key' };
  /**
   * The entry's relative offsets count from the entry's start, not from their
   * own field (ppc64's feature fixups: `.8byte 1b - entry`): a relocation's
   * addend is then past its target by the field's place in the entry.
   * Needs `defaultSize`.
   */
  entryRelative?: boolean;
  /** A table whose entries sit in step with this one's (ORC: .orc_unwind beside .orc_unwind_ip). */
  parallel?: { name: string; size?: number; env?: string };
}

export function specialSections(machine: number): readonly SpecialSection[] {
  return MACHINES.get(machine)?.sections ?? [];
}

/** Names of every special section of a machine, parallel tables included. */
export function specialSectionNames(machine: number): Set<string> {
  const names = new Set<string>();
  for (const d of specialSections(machine)) {
    names.add(d.name);
    if (d.parallel) names.add(d.parallel.name);
  }
  return names;
}

/**
 * Infers an entry size from where a section's relocations sit and what they
 * point at: the smallest size that divides the section and gives every entry
 * the same layout — the same relocated offsets, each pointing at code or at
 * data alike (so `{s32 addr; s32 key;}` is 8 bytes, not two 4-byte entries).
 * Undefined when no size fits (the caller then needs the size given).
 */
export function inferEntrySize(sectionSize: number, relocs: ReadonlyArray<{ offset: number; code: boolean }>): number | undefined {
  if (sectionSize === 0 || relocs.length === 0) return undefined;
  const sorted = [...relocs].sort((a, b) => a.offset - b.offset);
  for (let size = 1; size <= sectionSize; size++) {
    if (sectionSize % size !== 0) continue;
    const entries = sectionSize / size;
    if (sorted.length % entries !== 0) continue;
    const perEntry = sorted.length / entries;
    const pattern = sorted.slice(0, perEntry);
    if (pattern.some((r) => r.offset >= size)) continue;
    let ok = true;
    for (let k = 0; k < sorted.length && ok; k++) {
      const want = pattern[k % perEntry]!;
      ok = sorted[k]!.offset === Math.floor(k / perEntry) * size + want.offset && sorted[k]!.code === want.code;
    }
    if (ok) return size;
  }
  return undefined;
}
