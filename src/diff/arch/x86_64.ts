import type { ArchRules, ImmediateLoad } from '../arch.js';
import { BUG_TABLE, JUMP_TABLE, MCOUNT_LOC, PRINTK_INDEX } from '../rules/generic-sections.js';
import type { SpecialSection } from '../rules/special-sections.js';

// R_X86_64_PC32 = 2, R_X86_64_PLT32 = 4, R_X86_64_GOTPCREL = 9, R_X86_64_GOTPCRELX = 41, R_X86_64_REX_GOTPCRELX = 42
export const X86_64_RULES: ArchRules = {
  name: 'x86_64',
  littleEndian: true,
  ftraceEntry: { form: 'call', symbols: ['__fentry__'], relocOffsets: [1], describe: '__fentry__ call' },
  pcrelTypes: new Set([2, 4, 9, 41, 42]),
  pcrelBias: 4,
  pcrelSlack: 4,
  // The kernel is not built with a GOT on x86_64: GOTPCRELX loads are relaxed at link time.
  gotTypes: new Set(),
  callTypes: new Set([2, 4]),
  callPrefixes: [{ bytes: [0xe8] }, { bytes: [0xe9] }],
  returnJumps: [],
  immediateLoads: [
    ...[0xbe, 0xba, 0xbf, 0xb9, 0xb8, 0xbb, 0xbd].map((op) => x86Mov([op])), // mov $imm32, %esi/%edx/%edi/%ecx/%eax/%ebx/%ebp
    ...[0xb8, 0xb9, 0xba, 0xbb].map((op) => x86Mov([0x41, op])), // mov $imm32, %r8d..%r11d
  ],
  // R_X86_64_64 = 1, R_X86_64_PC64 = 24: 8 bytes; the 32-bit kinds: 4.
  zeroKlpFields: true,
  relocFieldSize: new Map([
    [1, 8],
    [24, 8],
  ]),
};

/** `mov $imm32, %r32` zero-extends into the 64-bit register. */
function x86Mov(bytes: number[]): ImmediateLoad {
  return { bytes, size: 4, signed: false };
}

export const X86_64_SECTIONS: readonly SpecialSection[] = [
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
