import { EM } from '../elf/index.js';

/**
 * What the differ must know about an architecture, as data. Adding an
 * architecture means adding a row, not code paths.
 */
export interface ArchRules {
  name: string;
  /** Symbols an ftrace entry calls; a patchable function starts with such a call. */
  fentrySymbols: readonly string[];
  /** Offsets (from the function's start) where the ftrace call's relocation sits. */
  fentryRelocOffsets: readonly number[];
  /** PC-relative relocation types: the addend counts from the end of the field (see pcrelBias). */
  pcrelTypes: ReadonlySet<number>;
  /** Bytes between a PC-relative field and the end of its instruction in the usual case (x86: the 4-byte field ends the instruction). */
  pcrelBias: number;
  /** Relocation types that are calls or jumps (for call graphs). */
  callTypes: ReadonlySet<number>;
  /** Opcode bytes just before a relocated call target (x86: e8 call; e9 jmp, a tail call). */
  callOpcodes: readonly number[];
  /**
   * Instruction encodings that load a 32-bit immediate into an argument
   * register, as [prefix bytes..., opcode]; the immediate follows. Used to
   * recognise `__LINE__` passed to WARN/might_sleep helpers.
   */
  immediateLoads: readonly (readonly number[])[];
  /** Size of the immediate those instructions carry. */
  immediateSize: number;
  /** Bytes a relocation of each type patches (default 4). */
  relocFieldSize: ReadonlyMap<number, number>;
}

// R_X86_64_PC32 = 2, R_X86_64_PLT32 = 4, R_X86_64_GOTPCREL = 9, R_X86_64_GOTPCRELX = 41, R_X86_64_REX_GOTPCRELX = 42
const X86_64: ArchRules = {
  name: 'x86_64',
  fentrySymbols: ['__fentry__'],
  fentryRelocOffsets: [1],
  pcrelTypes: new Set([2, 4, 9, 41, 42]),
  pcrelBias: 4,
  callTypes: new Set([2, 4]),
  callOpcodes: [0xe8, 0xe9],
  immediateLoads: [
    [0xbe],
    [0xba],
    [0xbf],
    [0xb9],
    [0xb8],
    [0xbb],
    [0xbd], // mov $imm32, %esi/%edx/%edi/%ecx/%eax/%ebx/%ebp
    [0x41, 0xb8],
    [0x41, 0xb9],
    [0x41, 0xba],
    [0x41, 0xbb], // mov $imm32, %r8d..%r11d
  ],
  immediateSize: 4,
  // R_X86_64_64 = 1, R_X86_64_PC64 = 24: 8 bytes; the 32-bit kinds: 4.
  relocFieldSize: new Map([
    [1, 8],
    [24, 8],
  ]),
};

const ARCHES = new Map<number, ArchRules>([[EM.X86_64, X86_64]]);

export function archRules(machine: number): ArchRules | undefined {
  return ARCHES.get(machine);
}
