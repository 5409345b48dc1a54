import { EM } from '../elf/index.js';

/**
 * Bytes of an instruction, some bits of which vary: `bytes[k]` must equal the
 * code's byte under `mask[k]` (default 0xff). s390x keeps a register number in
 * a nibble of the opcode bytes, so one pattern stands for sixteen encodings.
 */
export interface BytePattern {
  bytes: readonly number[];
  mask?: readonly number[];
}

/** How a function ftrace can redirect starts (kpatch: has_func_profiling). */
export type FtraceEntry =
  /** A call to an ftrace symbol whose relocation sits at one of `relocOffsets` from the function's start. */
  | { form: 'call'; symbols: readonly string[]; relocOffsets: readonly number[]; describe: string }
  /** A nop the compiler put first (no relocation in it), which ftrace rewrites into a branch. */
  | { form: 'nop'; bytes: readonly number[]; describe: string }
  /** Any of these: a machine whose kernels used several over the years. */
  | { form: 'any'; of: readonly FtraceEntry[]; describe: string };

/** An instruction loading an immediate into a register: the opcode pattern, then the immediate in the object's byte order. */
export interface ImmediateLoad extends BytePattern {
  size: 2 | 4;
  /** Whether the instruction sign-extends the immediate (a negative value is no line number). */
  signed: boolean;
}

/**
 * What the differ must know about an architecture, as data. Adding an
 * architecture means adding a row, not code paths.
 */
export interface ArchRules {
  name: string;
  ftraceEntry: FtraceEntry;
  /** PC-relative relocation types of instructions, whose addend is off the target by pcrelBias. */
  pcrelTypes: ReadonlySet<number>;
  /**
   * Added to such an addend, gives the offset into the target. x86 +4: the
   * addend counts back from the end of the 4-byte field, which ends the
   * instruction in the usual case. s390x -2: a DBL field sits 2 bytes into its
   * instruction and the addend counts from the instruction's start.
   */
  pcrelBias: number;
  /**
   * How many bytes further the target may be when nothing is at the biased
   * offset: x86 4 (an immediate after the field, `cmpl $0, x(%rip)`, moves the
   * instruction's end); 0 where the field's place in the instruction is fixed.
   */
  pcrelSlack: number;
  /**
   * Relocation types that go through a GOT slot: the slot holds the symbol's
   * address and the addend only offsets the slot (s390x module loader), so a
   * string or constant they reach needs a symbol at its own address.
   */
  gotTypes: ReadonlySet<number>;
  /** Relocation types that are calls or jumps (for call graphs). */
  callTypes: ReadonlySet<number>;
  /** The instruction bytes just before a relocated call or tail-call target (x86: e8 call; e9 jmp). */
  callPrefixes: readonly BytePattern[];
  /**
   * Jumps that are the function's return, not a call (s390x expolines:
   * `jg __s390_indirect_jump_r14`): left out of call graphs, so they neither
   * look like calls out of the object nor hide IPA-RA exposure.
   */
  returnJumps: readonly { prefix: BytePattern; symbols: readonly string[] }[];
  /** Instructions that load `__LINE__` for WARN/might_sleep helpers. */
  immediateLoads: readonly ImmediateLoad[];
  /** Bytes a relocation of each type patches (default 4). */
  relocFieldSize: ReadonlyMap<number, number>;
}

// R_X86_64_PC32 = 2, R_X86_64_PLT32 = 4, R_X86_64_GOTPCREL = 9, R_X86_64_GOTPCRELX = 41, R_X86_64_REX_GOTPCRELX = 42
const X86_64: ArchRules = {
  name: 'x86_64',
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
  relocFieldSize: new Map([
    [1, 8],
    [24, 8],
  ]),
};

/** `mov $imm32, %r32` zero-extends into the 64-bit register. */
function x86Mov(bytes: number[]): ImmediateLoad {
  return { bytes, size: 4, signed: false };
}

/**
 * s390x (Linux built with -fPIE -mnop-mcount, livepatch objects with
 * -mno-pic-data-is-text-relative): relocation numbers from elf.h.
 * R_390_PC16DBL = 17, R_390_PLT16DBL = 18, R_390_PC32DBL = 19, R_390_PLT32DBL = 20,
 * R_390_GOTPCDBL = 21, R_390_GOTENT = 26, R_390_GOTPLTENT = 33. The non-DBL
 * PC32/PC64 (5, 23) only come from `.long x - .` in tables: their addend is exact.
 */
const S390X: ArchRules = {
  name: 's390x',
  // gcc -mnop-mcount: `brcl 0,0` (jgnop), recorded in __mcount_loc.
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
  relocFieldSize: new Map([
    [1, 1],
    ...[2, 3, 6, 15, 16, 17, 18, 27, 29, 30, 34].map((t): [number, number] => [t, 2]),
    ...[22, 23, 24, 25, 28, 32, 36].map((t): [number, number] => [t, 8]),
  ]),
};

const ARCHES = new Map<number, ArchRules>([
  [EM.X86_64, X86_64],
  [EM.S390, S390X],
]);

export function archRules(machine: number): ArchRules | undefined {
  return ARCHES.get(machine);
}

/** Names of the architectures the differ has rules for. */
export function supportedArches(): string[] {
  return [...ARCHES.values()].map((a) => a.name);
}

/** Whether `data` holds `pattern` at `at`. */
export function matchesAt(data: Uint8Array, at: number, pattern: BytePattern): boolean {
  if (at < 0 || at + pattern.bytes.length > data.length) return false;
  return pattern.bytes.every((b, k) => (data[at + k]! & (pattern.mask?.[k] ?? 0xff)) === b);
}

/** Whether the instruction bytes right before a relocated field at `field` are one of `patterns`. */
export function instructionBefore(data: Uint8Array, field: number, patterns: readonly BytePattern[]): boolean {
  return patterns.some((p) => matchesAt(data, field - p.bytes.length, p));
}
