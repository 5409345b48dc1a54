import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { dir } from 'tmp-promise';
import { generateProbeScript } from './guest-script.js';
import { buildInitramfs } from './initramfs.js';
import { markerPrefix } from './protocol.js';
import { GUEST_CMDLINE, runQemu, type Accelerator, type AcceleratorChoice } from './qemu.js';

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
}

export function chooseAccelerator(choice: AcceleratorChoice, inputs: ProbeInputs): Promise<Accelerator> {
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
    const r = await runQemu({ kernel: inputs.kernel, initramfs, append: GUEST_CMDLINE, accel, timeoutMs: PROBE_TIMEOUT_MS, serialLog });
    if (r.timedOut) return false;
    return (await readFile(serialLog, 'utf8')).includes(`${markerPrefix(nonce)}done`);
  } finally {
    await work.cleanup();
  }
}
