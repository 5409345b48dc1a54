import { EM } from '../../elf/index.js';

/**
 * The kernel's per-call-site tables, as data (in the spirit of objtool's
 * arch/x86/special.c). Each entry of such a section describes one place in
 * the code; the entries of a function are found through the `key` relocation.
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
  /** A table whose entries sit in step with this one's (ORC: .orc_unwind beside .orc_unwind_ip). */
  parallel?: { name: string; size?: number; env?: string };
}

/*
 * Tables whose layout the kernel's generic code defines, alike on every 64-bit
 * architecture with relative pointers (HAVE_ARCH_JUMP_LABEL_RELATIVE,
 * GENERIC_BUG_RELATIVE_POINTERS): shared by the rows below, not copied.
 */
// struct jump_entry { s32 code; s32 target; long key; }: the key's low bits carry flags.
const JUMP_TABLE: SpecialSection = {
  name: '__jump_table',
  env: 'JUMP_STRUCT_SIZE',
  keyOffset: 0,
  keyField: { offset: 8, kind: 'static key' },
};
// struct bug_entry with relative pointers: bug_addr_disp, file_disp, line (u16), flags (u16).
const BUG_TABLE: SpecialSection = { name: '__bug_table', env: 'BUG_STRUCT_SIZE', keyOffset: 0, line: { offset: 8, size: 2 } };
// A pointer to a struct pi_entry (CONFIG_PRINTK_INDEX).
const PRINTK_INDEX: SpecialSection = {
  name: '.printk_index',
  env: 'PRINTK_INDEX_STRUCT_SIZE',
  defaultSize: 8,
  keyOffset: 0,
  metadata: true,
};
// The address of each ftrace site (-mrecord-mcount, objtool --mcount).
const MCOUNT_LOC: SpecialSection = { name: '__mcount_loc', derived: true, defaultSize: 8, keyOffset: 0 };

const X86_64: readonly SpecialSection[] = [
  { name: '.altinstructions', env: 'ALT_STRUCT_SIZE', keyOffset: 0 },
  // struct exception_table_entry { int insn, fixup, data; }
  { name: '__ex_table', env: 'EX_STRUCT_SIZE', keyOffset: 0 },
  JUMP_TABLE,
  BUG_TABLE,
  // struct static_call_site { s32 addr; s32 key; }
  { name: '.static_call_sites', env: 'STATIC_CALL_STRUCT_SIZE', keyOffset: 0, keyField: { offset: 4, kind: 'static call key' } },
  {
    name: '.orc_unwind_ip',
    derived: true,
    defaultSize: 4,
    keyOffset: 0,
    parallel: { name: '.orc_unwind', size: 6, env: 'ORC_STRUCT_SIZE' },
  },
  { name: '.smp_locks', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.parainstructions', env: 'PARA_STRUCT_SIZE', keyOffset: 0 },
  { name: '.retpoline_sites', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.return_sites', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.call_sites', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.ibt_endbr_seal', derived: true, defaultSize: 4, keyOffset: 0 },
  PRINTK_INDEX,
  MCOUNT_LOC,
  { name: '__patchable_function_entries', derived: true, defaultSize: 8, keyOffset: 0 },
];

/**
 * s390x (arch/s390/include/asm, Linux 6.1). Sizes that changed across kernel
 * versions (struct alt_instr) are left to the environment or inferred.
 */
const S390X: readonly SpecialSection[] = [
  // struct alt_instr { s32 instr_offset; s32 repl_offset; u16 facility; u8 instrlen; } __packed: 11 bytes in 6.1.
  { name: '.altinstructions', env: 'ALT_STRUCT_SIZE', keyOffset: 0 },
  // struct exception_table_entry { int insn, fixup; short type, data; }
  { name: '__ex_table', env: 'EX_STRUCT_SIZE', keyOffset: 0 },
  JUMP_TABLE,
  BUG_TABLE,
  // Expoline sites (gcc -mindirect-branch-table; nospec-insn.h for asm): `.long insn - .`, undone at boot
  // or module load when expolines are off. gcc emits them for the code it compiles.
  { name: '.s390_indirect_jump', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.s390_indirect_call', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.s390_return_reg', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.s390_return_mem', derived: true, defaultSize: 4, keyOffset: 0 },
  { name: '.s390_indirect_branches', derived: true, defaultSize: 4, keyOffset: 0 },
  // The address of each stack-protector guard load (gcc -mstack-protector-guard-record, newer kernels with
  // CONFIG_STACKPROTECTOR): `.quad label`, which the kernel patches to its per-task guard at boot and load.
  { name: '__stack_protector_loc', derived: true, defaultSize: 8, keyOffset: 0 },
  PRINTK_INDEX,
  MCOUNT_LOC,
];

const TABLES = new Map<number, readonly SpecialSection[]>([
  [EM.X86_64, X86_64],
  [EM.S390, S390X],
]);

export function specialSections(machine: number): readonly SpecialSection[] {
  return TABLES.get(machine) ?? [];
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
