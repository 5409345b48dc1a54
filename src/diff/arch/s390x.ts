import type { ArchRules } from '../arch.js';
import { BUG_TABLE, JUMP_TABLE, MCOUNT_LOC, PRINTK_INDEX } from '../rules/generic-sections.js';
import type { SpecialSection } from '../rules/special-sections.js';

/**
 * s390x (Linux built with -fPIE -mnop-mcount, livepatch objects with
 * -mno-pic-data-is-text-relative): relocation numbers from elf.h.
 * R_390_PC16DBL = 17, R_390_PLT16DBL = 18, R_390_PC32DBL = 19, R_390_PLT32DBL = 20,
 * R_390_GOTPCDBL = 21, R_390_GOTENT = 26, R_390_GOTPLTENT = 33. The non-DBL
 * PC32/PC64 (5, 23) only come from `.long x - .` in tables: their addend is exact.
 */
export const S390X_RULES: ArchRules = {
  name: 's390x',
  littleEndian: false,
  // Which one a kernel has depends on its version and gcc (arch/s390/Makefile, kernel/trace/Kconfig):
  // -mnop-mcount or -mhotpatch=0,3: `brcl 0,0` (jgnop), recorded in __mcount_loc (6.1 with gcc 9+);
  // -mfentry alone: `brasl %r0,__fentry__`; plain -pg (older kernels): `stg %r14,8(%r15)` then
  // `brasl %r14,_mcount`.
  ftraceEntry: {
    form: 'any',
    of: [
      { form: 'nop', bytes: [0xc0, 0x04, 0x00, 0x00, 0x00, 0x00], describe: 'brcl 0,0' },
      { form: 'call', symbols: ['__fentry__'], relocOffsets: [2], describe: 'brasl %r0,__fentry__' },
      { form: 'call', symbols: ['_mcount'], relocOffsets: [8], describe: 'brasl %r14,_mcount' },
    ],
    describe: 'ftrace nop (brcl 0,0)',
  },
  pcrelTypes: new Set([17, 18, 19, 20, 21, 26, 33]),
  pcrelBias: -2,
  pcrelSlack: 0,
  // R_390_GOT12/32/16/64/20 = 6/7/15/24/58, GOTENT = 26, GOTPLT12/16/32/64/20 = 29/30/31/32/59, GOTPLTENT = 33.
  gotTypes: new Set([6, 7, 15, 24, 26, 29, 30, 31, 32, 33, 58, 59]),
  callTypes: new Set([19, 20]),
  callPrefixes: [
    { bytes: [0xc0, 0x05], mask: [0xff, 0x0f] }, // brasl %rN, f
    { bytes: [0xc0, 0xf4] }, // jg f: a tail call
  ],
  // -mfunction-return=thunk-extern: returns are brcl (any condition) to the r14 expoline.
  returnJumps: [{ prefix: { bytes: [0xc0, 0x04], mask: [0xff, 0x0f] }, symbols: ['__s390_indirect_jump_r14'] }],
  immediateLoads: [
    { bytes: [0xa7, 0x09], mask: [0xff, 0x0f], size: 2, signed: true }, // lghi %rN, imm16
    { bytes: [0xa7, 0x08], mask: [0xff, 0x0f], size: 2, signed: true }, // lhi %rN, imm16
    { bytes: [0xa5, 0x0f], mask: [0xff, 0x0f], size: 2, signed: false }, // llill %rN, imm16 (32768..65535)
    { bytes: [0xc0, 0x01], mask: [0xff, 0x0f], size: 4, signed: true }, // lgfi %rN, imm32
    { bytes: [0xc0, 0x09], mask: [0xff, 0x0f], size: 4, signed: false }, // iilf %rN, imm32
    { bytes: [0xc0, 0x0f], mask: [0xff, 0x0f], size: 4, signed: false }, // llilf %rN, imm32
  ],
  // R_390_8 = 1; 12/16-bit kinds (2, 3, 6, 15, 16, 17, 18, 27, 29, 30, 34): 2; 64-bit kinds (22, 23, 24, 25, 28, 32, 36): 8.
  zeroKlpFields: true,
  relocFieldSize: new Map([
    [1, 1],
    ...[2, 3, 6, 15, 16, 17, 18, 27, 29, 30, 34].map((t): [number, number] => [t, 2]),
    ...[22, 23, 24, 25, 28, 32, 36].map((t): [number, number] => [t, 8]),
  ]),
};

/**
 * s390x (arch/s390/include/asm, Linux 6.1). Sizes that changed across kernel
 * versions (struct alt_instr) are left to the environment or inferred.
 */
export const S390X_SECTIONS: readonly SpecialSection[] = [
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
