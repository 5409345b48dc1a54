/**
 * /proc/sys/kernel/tainted decoding (Linux 6.1, include/linux/panic.h and
 * Documentation/admin-guide/tainted-kernels.rst). Loading a livepatch always
 * sets K, one built outside the tree sets O, an unsigned one E where signatures are checked; any other bit after a verify
 * run means the patch (or the test) upset the kernel.
 */

export interface TaintFlag {
  readonly bit: number;
  /** The letter the kernel prints in oopses ("Tainted: G   O   K"). */
  readonly letter: string;
  readonly name: string;
}

export const TAINT_FLAGS: readonly TaintFlag[] = [
  { bit: 0, letter: 'P', name: 'proprietary module loaded' },
  { bit: 1, letter: 'F', name: 'module force-loaded' },
  { bit: 2, letter: 'S', name: 'kernel running on an out-of-spec system' },
  { bit: 3, letter: 'R', name: 'module force-unloaded' },
  { bit: 4, letter: 'M', name: 'machine check exception' },
  { bit: 5, letter: 'B', name: 'bad page referenced or unexpected page flags' },
  { bit: 6, letter: 'U', name: 'taint requested by userspace' },
  { bit: 7, letter: 'D', name: 'kernel died recently (OOPS or BUG)' },
  { bit: 8, letter: 'A', name: 'ACPI table overridden' },
  { bit: 9, letter: 'W', name: 'kernel issued a warning' },
  { bit: 10, letter: 'C', name: 'staging driver loaded' },
  { bit: 11, letter: 'I', name: 'platform firmware bug worked around' },
  { bit: 12, letter: 'O', name: 'externally-built (out-of-tree) module loaded' },
  { bit: 13, letter: 'E', name: 'unsigned module loaded' },
  { bit: 14, letter: 'L', name: 'soft lockup occurred' },
  { bit: 15, letter: 'K', name: 'kernel has been live patched' },
  { bit: 16, letter: 'X', name: 'auxiliary taint (distribution-defined)' },
  { bit: 17, letter: 'T', name: 'kernel built with the struct randomization plugin' },
  { bit: 18, letter: 'N', name: 'in-kernel test has been run' },
];

/**
 * Taints a successful livepatch run is expected to leave. E comes with any
 * module a kernel that checks signatures (CONFIG_MODULE_SIG without _FORCE,
 * as distributions ship) cannot verify: a livepatch built here is not signed
 * with the distribution's key.
 */
export const EXPECTED_TAINT_LETTERS: readonly string[] = ['K', 'O', 'E'];

export interface DecodedTaint {
  readonly value: number;
  readonly flags: readonly TaintFlag[];
  /** Flags outside EXPECTED_TAINT_LETTERS: each one fails verification. */
  readonly unexpected: readonly TaintFlag[];
}

/** null when the text is not the decimal number /proc/sys/kernel/tainted holds. */
export function decodeTaint(text: string): DecodedTaint | null {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return null;
  const value = Number(t);
  if (!Number.isSafeInteger(value)) return null;
  const flags: TaintFlag[] = [];
  for (let bit = 0; 2 ** bit <= value; bit++) {
    if (Math.floor(value / 2 ** bit) % 2 === 1) {
      flags.push(TAINT_FLAGS.find((f) => f.bit === bit) ?? { bit, letter: '?', name: `unknown taint bit ${bit}` });
    }
  }
  const unexpected = flags.filter((f) => !EXPECTED_TAINT_LETTERS.includes(f.letter));
  return { value, flags, unexpected };
}

/** "K O" style summary, empty string for an untainted kernel. */
export function taintLetters(t: DecodedTaint): string {
  return t.flags.map((f) => f.letter).join('');
}
