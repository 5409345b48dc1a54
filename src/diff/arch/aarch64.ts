import type { ArchRules, ImmediateLoad } from '../arch.js';
import { BUG_TABLE, JUMP_TABLE, MCOUNT_LOC, PRINTK_INDEX } from '../rules/generic-sections.js';
import type { SpecialSection } from '../rules/special-sections.js';

/** An A64 instruction word as it sits in a little-endian object. */
const word = (w: number): number[] => [w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24];
const NOP = word(0xd503201f);
const BTI_C = word(0xd503245f);
/** Where -pg's `bl _mcount` may sit: after up to six register-pair stores, the frame pointer and pointer auth. */
const MCOUNT_CALL_OFFSETS = Array.from({ length: 15 }, (_v, k) => 8 + 4 * k);

/**
 * arm64 (Linux built with -fno-PIE -mcmodel=small, little-endian): relocation
 * numbers from elf.h. Every instruction is one 4-byte word and its relocation
 * patches that word, so an addend is the exact offset into its target:
 * R_AARCH64_LD_PREL_LO19 = 273, ADR_PREL_LO21 = 274, ADR_PREL_PG_HI21 = 275,
 * ADR_PREL_PG_HI21_NC = 276 (adrp); ADD_ABS_LO12_NC = 277 and
 * LDST8/16/32/64/128_ABS_LO12_NC = 278/284/285/286/299 (the page offset
 * paired with an adrp, naming the same symbol and addend); TSTBR14 = 279,
 * CONDBR19 = 280, JUMP26 = 282 (b: a tail call), CALL26 = 283 (bl).
 * Data: ABS64 = 257, ABS32 = 258, ABS16 = 259, PREL64 = 260, PREL32 = 261, PREL16 = 262.
 */
export const AARCH64_RULES: ArchRules = {
  name: 'aarch64',
  littleEndian: true,
  // kpatch (has_func_profiling) asks for the function's __patchable_function_entries entry; gcc writes one
  // exactly where it put the nops, and the kernel's notrace (patchable_function_entry(0, 0)) removes both.
  // -fpatchable-function-entry=2 (DYNAMIC_FTRACE_WITH_REGS from 5.5, WITH_ARGS from 6.2): two nops first,
  // before paciasp; with CONFIG_ARM64_BTI_KERNEL (clang or newer gcc) the `bti c` landing pad precedes them.
  // With DYNAMIC_FTRACE_WITH_CALL_OPS (6.8+, -fpatchable-function-entry=4,2) two more nops sit before the
  // symbol, outside the function. Older kernels (plain -pg): `bl _mcount` after the frame record is set up
  // (stp x29, x30; mov x29, sp; mov x0, x30), recorded in __mcount_loc.
  ftraceEntry: {
    form: 'any',
    of: [
      { form: 'nop', bytes: [...NOP, ...NOP], describe: 'nop; nop' },
      { form: 'nop', bytes: [...BTI_C, ...NOP, ...NOP], describe: 'bti c; nop; nop' },
      // gcc schedules the call after the registers it saves (and paciasp, xpaclri, `mov x0, x30`).
      { form: 'call', symbols: ['_mcount'], relocOffsets: MCOUNT_CALL_OFFSETS, describe: 'bl _mcount' },
    ],
    describe: 'ftrace nops (-fpatchable-function-entry=2: nop; nop)',
  },
  // The bias is 0: the addend is already the offset into the target, whatever the instruction.
  pcrelTypes: new Set([273, 274, 275, 276, 277, 278, 279, 280, 282, 283, 284, 285, 286, 299]),
  pcrelBias: 0,
  pcrelSlack: 0,
  // R_AARCH64_GOT_LD_PREL19 = 309, LD64_GOTOFF_LO15 = 310, ADR_GOT_PAGE = 311, LD64_GOT_LO12_NC = 312,
  // LD64_GOTPAGE_LO15 = 313: the kernel is -fno-PIE, so only hand-written asm or a PIC build has them.
  gotTypes: new Set([309, 310, 311, 312, 313]),
  callTypes: new Set([282, 283]),
  // The relocation patches the bl/b word itself: nothing precedes its field.
  callPrefixes: [{ bytes: [] }],
  returnJumps: [],
  // `mov wN, #imm16` (movz, 32-bit): 0x52800000 | imm16 << 5 | Rd, the immediate in bits [20:5] of the
  // word. gcc loads a line number above 65535 with a movz/movk pair: such a change stays a change.
  immediateLoads: [movz(0x52800000), movz(0xd2800000)],
  // R_AARCH64_ABS64 = 257, PREL64 = 260: 8 bytes; ABS16 = 259, PREL16 = 262: 2; the rest patch a 4-byte word.
  zeroKlpFields: false,
  relocFieldSize: new Map([
    [257, 8],
    [260, 8],
    [259, 2],
    [262, 2],
  ]),
};

/** movz into any register, hw = 0: every bit but the immediate and Rd must match `opcode`. */
function movz(opcode: number): ImmediateLoad {
  return { bytes: word(opcode), mask: word(0xffe00000), size: 4, signed: false, bits: { shift: 5, width: 16 } };
}

/**
 * arm64 (arch/arm64/include/asm, Linux 6.1 and older). Sizes that changed
 * across kernel versions (`__ex_table`: 8 bytes before 5.16, 12 since) are
 * left to the environment or inferred.
 */
export const AARCH64_SECTIONS: readonly SpecialSection[] = [
  // struct alt_instr { s32 orig_offset; s32 alt_offset; u16 cpufeature; u8 orig_len; u8 alt_len; }: 12 bytes
  // since 4.1. Not inferable: alt_offset names the replacement (in the function's own section, `.subsection 1`)
  // or, for ALTERNATIVE_CB, an undefined callback (alt_cb_patch_nops).
  { name: '.altinstructions', env: 'ALT_STRUCT_SIZE', defaultSize: 12, keyOffset: 0 },
  // struct exception_table_entry { int insn, fixup; short type, data; } (5.16+); { int insn, fixup; } before.
  { name: '__ex_table', env: 'EX_STRUCT_SIZE', keyOffset: 0 },
  JUMP_TABLE,
  BUG_TABLE,
  PRINTK_INDEX,
  MCOUNT_LOC,
  // gcc's record of each function's ftrace nops (`.xword` of the function's start): derived from the code.
  { name: '__patchable_function_entries', derived: true, defaultSize: 8, keyOffset: 0 },
];
