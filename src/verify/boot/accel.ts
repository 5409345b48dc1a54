import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { dir } from 'tmp-promise';
import { VerifyError } from '../errors.js';
import { generateProbeScript } from '../guest/guest-script.js';
import { buildInitramfs } from './initramfs.js';
import { guestCmdline, kvmPossible, X86_64, type Machine } from './machines.js';
import { markerPrefix } from '../guest/protocol.js';
import { runQemu, type Accelerator, type AcceleratorChoice } from './qemu.js';

/**
 * A /dev/kvm that opens is no promise that guests run: on some hosts KVM
 * guests abort on an MSR (-cpu host) or hang. So KVM is used only after a
 * throw-away guest booted under it and reported back within a short limit;
 * otherwise TCG. The answer is kept for the life of the process.
 */
const PROBE_TIMEOUT_MS = 15_000;
const cache = new Map<string, Promise<Accelerator>>();

export interface ProbeInputs {
  readonly kernel: string;
  readonly busybox: string;
  readonly genInitCpio: string;
  /** Default x86_64. */
  readonly machine?: Machine;
}

/**
 * KVM runs only guests of the host's own instruction set (an s390x guest on
 * an x86_64 host is TCG or nothing): an explicit kvm is refused before
 * anything is prepared, and auto is TCG without a probe.
 */
export function assertAcceleratorPossible(choice: AcceleratorChoice, machine: Machine = X86_64): void {
  if (choice === 'kvm' && !kvmPossible(machine)) throw noKvm(machine);
}

function noKvm(machine: Machine): VerifyError {
  return new VerifyError(
    'VERIFY_NO_KVM',
    `--accel kvm cannot run ${machine.name} guests on this ${process.arch} host: use --accel tcg (or auto)`,
  );
}

export function chooseAccelerator(choice: AcceleratorChoice, inputs: ProbeInputs): Promise<Accelerator> {
  const machine = inputs.machine ?? X86_64;
  if (choice === 'kvm' && !kvmPossible(machine)) return Promise.reject(noKvm(machine));
  if (!kvmPossible(machine)) return Promise.resolve('tcg');
  if (choice !== 'auto') return Promise.resolve(choice);
  const key = path.resolve(inputs.kernel);
  let answer = cache.get(key);
  if (!answer) {
    answer = probeKvm(inputs).then(
      (works): Accelerator => (works ? 'kvm' : 'tcg'),
      (): Accelerator => 'tcg',
    );
    cache.set(key, answer);
  }
  return answer;
}

async function probeKvm(inputs: ProbeInputs): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  return probeGuestRuns(inputs, 'kvm');
}

/** Boots a guest that only reports back and reboots; true when it did so within the probe's limit. */
export async function probeGuestRuns(inputs: ProbeInputs, accel: Accelerator): Promise<boolean> {
  const work = await dir({ prefix: 'klpforge-accel-probe', unsafeCleanup: true });
  try {
    const nonce = randomBytes(6).toString('hex');
    const initramfs = path.join(work.path, 'probe.cpio.gz');
    const serialLog = path.join(work.path, 'serial.log');
    await buildInitramfs({
      genInitCpio: inputs.genInitCpio,
      workDir: work.path,
      output: initramfs,
      files: [
        { guestPath: '/bin/busybox', source: { file: inputs.busybox }, mode: 0o755 },
        { guestPath: '/init', source: { text: generateProbeScript(nonce) }, mode: 0o755 },
      ],
    });
    const machine = inputs.machine ?? X86_64;
    const r = await runQemu({
      kernel: inputs.kernel,
      initramfs,
      append: guestCmdline(machine),
      accel,
      timeoutMs: PROBE_TIMEOUT_MS,
      serialLog,
      machine,
    });
    if (r.timedOut) return false;
    return (await readFile(serialLog, 'utf8')).includes(`${markerPrefix(nonce)}done`);
  } finally {
    await work.cleanup();
  }
}
