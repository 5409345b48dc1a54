import { execa } from 'execa';
import { guestCmdline, X86_64, type Machine } from './machines.js';

/** kvm: hardware virtualisation (fast, often unavailable); tcg: QEMU's emulator (always works, ~3 s per boot here). */
export type Accelerator = 'kvm' | 'tcg';
export type AcceleratorChoice = Accelerator | 'auto';

export interface QemuRunOptions {
  readonly kernel: string;
  readonly initramfs: string;
  /** Kernel command line. */
  readonly append: string;
  readonly accel: Accelerator;
  /** The whole run, boot included; QEMU is killed after it. */
  readonly timeoutMs: number;
  /** File receiving everything the guest prints on its serial console. */
  readonly serialLog: string;
  readonly memoryMb?: number;
  /** Which QEMU, board, CPU model and console; default x86_64. */
  readonly machine?: Machine;
}

export interface QemuRunResult {
  readonly timedOut: boolean;
  /** null when QEMU was killed. */
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly durationMs: number;
}

/** The x86_64 guests' kernel command line (guestCmdline in machines.ts gives each machine's). */
export const GUEST_CMDLINE = guestCmdline(X86_64);

export function qemuArgs(o: QemuRunOptions): string[] {
  const m = o.machine ?? X86_64;
  return [
    ...m.machineArgs,
    '-kernel',
    o.kernel,
    '-initrd',
    o.initramfs,
    '-append',
    o.append,
    // -nographic puts the serial console on stdout; -no-reboot turns the guest's `reboot -f` (or a panic) into QEMU exiting.
    '-nographic',
    '-no-reboot',
    '-m',
    String(o.memoryMb ?? 512),
    ...(o.accel === 'kvm' ? m.kvmArgs : m.tcgArgs),
  ];
}

/** Runs one guest to completion, or kills it at the time limit. Never throws for a guest failure. */
export async function runQemu(o: QemuRunOptions): Promise<QemuRunResult> {
  const started = performance.now();
  const r = await execa((o.machine ?? X86_64).qemuBinary, qemuArgs(o), {
    stdin: 'ignore',
    stdout: { file: o.serialLog },
    stderr: 'pipe',
    reject: false,
    timeout: o.timeoutMs,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: 5000,
  });
  return {
    timedOut: r.timedOut,
    exitCode: r.timedOut ? null : (r.exitCode ?? null),
    stderr: r.stderr,
    durationMs: Math.round(performance.now() - started),
  };
}
