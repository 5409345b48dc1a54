import { MACHINES } from './arch/machines.js';

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
  /**
   * The immediate is a bit field of the instruction word, not bytes after the
   * pattern (arm64 movz: bits 20..5): the pattern is then the whole `size`-byte
   * word, its mask leaving the field and the register open.
   */
  bits?: { shift: number; width: number };
}

/**
 * What the differ must know about an architecture, as data. Adding an
 * architecture means adding a row (src/diff/arch/MACHINE.ts, registered in
 * arch/machines.ts), not code paths.
 */
export interface ArchRules {
  name: string;
  /** The byte order the rules are for: one e_machine may name both (EM_PPC64: ELFv1 big-endian ppc64, ELFv2 ppc64le). */
  littleEndian: boolean;
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
  /**
   * Whether a klp relocation's field must be zero in the module (x86's
   * apply_relocate_add refuses to overwrite anything else). Only where every
   * field is bytes of its own: ppc64's and arm64's branch fields are bits of
   * the instruction word, whose opcode the loader keeps.
   */
  zeroKlpFields: boolean;
  /**
   * Sections of address slots code loads a symbol's address from (ppc64's
   * `.toc`: a `TOC16` reference to `.toc+off`, whose slot holds an `ADDR64`
   * to the symbol): a reference into one is to what its slot names, so two
   * builds that number their slots differently still agree.
   */
  indirectSections?: readonly { name: string; slotSize: number }[];
  /**
   * Symbols each module's own link provides (ppc64's `.TOC.`, the base the
   * global entry computes r2 from): left undefined in the output, never taken
   * from the running kernel.
   */
  moduleSymbols?: readonly string[];
}

export function archRules(machine: number): ArchRules | undefined {
  return MACHINES.get(machine)?.rules;
}

/** The rules for an object, or undefined when the differ has none for its machine and byte order. */
export function archRulesFor(ident: { machine: number; littleEndian: boolean }): ArchRules | undefined {
  const rules = archRules(ident.machine);
  return rules?.littleEndian === ident.littleEndian ? rules : undefined;
}

/** Names of the architectures the differ has rules for. */
export function supportedArches(): string[] {
  return [...MACHINES.values()].map((m) => m.rules.name);
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
