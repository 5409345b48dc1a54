import type { SpecialSection } from './special-sections.js';

/*
 * Tables whose layout the kernel's generic code defines, alike on every 64-bit
 * architecture with relative pointers (HAVE_ARCH_JUMP_LABEL_RELATIVE,
 * GENERIC_BUG_RELATIVE_POINTERS): shared by the machines' tables (src/diff/arch/), not copied.
 */
// struct jump_entry { s32 code; s32 target; long key; }: the key's low bits carry flags.
export const JUMP_TABLE: SpecialSection = {
  name: '__jump_table',
  env: 'JUMP_STRUCT_SIZE',
  keyOffset: 0,
  keyField: { offset: 8, kind: 'static key' },
};
// struct bug_entry with relative pointers: bug_addr_disp, file_disp, line (u16), flags (u16).
export const BUG_TABLE: SpecialSection = { name: '__bug_table', env: 'BUG_STRUCT_SIZE', keyOffset: 0, line: { offset: 8, size: 2 } };
// A pointer to a struct pi_entry (CONFIG_PRINTK_INDEX).
export const PRINTK_INDEX: SpecialSection = {
  name: '.printk_index',
  env: 'PRINTK_INDEX_STRUCT_SIZE',
  defaultSize: 8,
  keyOffset: 0,
  metadata: true,
};
// The address of each ftrace site (-mrecord-mcount, objtool --mcount).
export const MCOUNT_LOC: SpecialSection = { name: '__mcount_loc', derived: true, defaultSize: 8, keyOffset: 0 };
