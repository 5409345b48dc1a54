/**
 * How the guest reports to the host. Every report is one line written to
 * /dev/kmsg, so the kernel prints it on the serial console as a whole printk
 * record: unlike a tty write it cannot be split by a kernel message printed
 * at the same moment, it is flushed by the kernel itself before `reboot -f`
 * restarts the machine, and it sits in order among the kernel's own lines,
 * which lets the host attribute kernel messages to the step that caused them.
 *
 *   @@klpv:NONCE:begin:STEP
 *   @@klpv:NONCE:out:STEP:one line of the step's output
 *   @@klpv:NONCE:trunc:STEP:TOTAL_LINES
 *   @@klpv:NONCE:end:STEP:EXIT_CODE:PASS|FAIL     (EXIT_CODE `-` with SKIP)
 *   @@klpv:NONCE:info:KEY:VALUE
 *   @@klpv:NONCE:done
 *
 * The per-run nonce keeps a marker from an earlier run, or text a check prints
 * that merely looks like one, from being taken for this run's report.
 */

export const MARKER_TAG = '@@klpv';

/** Lines of a step's output the guest reports; the rest is counted in `trunc`. */
export const MAX_OUTPUT_LINES = 40;
/** Bytes per reported output line: a printk record holds about 1 KiB. */
export const MAX_OUTPUT_LINE_BYTES = 300;

export type GuestStatus = 'PASS' | 'FAIL' | 'SKIP';

export function markerPrefix(nonce: string): string {
  return `${MARKER_TAG}:${nonce}:`;
}

/**
 * Whether an exit code means the expectation held. A command killed by a
 * signal (>= 128: the guest's per-check timeout, an oops killing the task)
 * never counts as a check "failing as expected": that is breakage, not a
 * clean answer. The guest script encodes the same rule for its PASS/FAIL.
 */
export function expectationHeld(expect: 'succeed' | 'fail', exitCode: number): boolean {
  if (expect === 'succeed') return exitCode === 0;
  return exitCode > 0 && exitCode < 128;
}
