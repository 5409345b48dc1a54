import { homedir } from 'node:os';
import path from 'node:path';
import { EM, machineName } from '../../elf/constants.js';
import { readElfFile } from '../../elf/read.js';
import { VerifyError } from '../errors.js';

/**
 * The machines verify can boot, one row each: everything that differs between
 * architectures is data here, so the rest of src/verify is the same code for
 * all of them. A row is chosen by the e_machine of the module under test (a
 * livepatch only loads into a kernel of its own architecture).
 */

/** Where the guest's static busybox comes from. */
export type BusyboxSource =
  /** The host's own (Debian busybox-static): only right when the guest runs the host's instruction set. */
  | { readonly kind: 'host' }
  /** A foreign one that scripts/fetch-busybox ARCH put in the cache (Debian's busybox-static of that architecture). */
  | { readonly kind: 'cache'; readonly debianArch: string };

export interface Machine {
  /** The architecture's usual name, as `scripts/fetch-kernel --arch` takes it. */
  readonly name: string;
  /** ELF e_machine of its modules (EM.*). */
  readonly elfMachine: number;
  readonly qemuBinary: string;
  /** The Debian package that ships qemuBinary, for the "install it" message. */
  readonly qemuPackage: string;
  /** Board selection, before the accelerator's arguments; empty for QEMU's default board. */
  readonly machineArgs: readonly string[];
  /** Accelerator and CPU model under TCG. */
  readonly tcgArgs: readonly string[];
  /** Accelerator and CPU model under KVM: the host's CPU, so the guest sees its features. */
  readonly kvmArgs: readonly string[];
  /** The host architecture (Node's process.arch) whose KVM can run this guest; KVM is never tried elsewhere. */
  readonly kvmHostArch: string;
  /** The console the guest's kernel writes to, the device QEMU's -nographic puts on its stdout. */
  readonly console: string;
  readonly busybox: BusyboxSource;
  /** The image QEMU boots, relative to its kernel build directory. */
  readonly kernelImage: string;
}

export const MACHINES: readonly Machine[] = [
  {
    name: 'x86_64',
    elfMachine: EM.X86_64,
    qemuBinary: 'qemu-system-x86_64',
    qemuPackage: 'qemu-system-x86',
    machineArgs: [],
    // TCG's default CPU model boots the x86 fixture; `-cpu host` is what KVM needs to expose the host's features.
    tcgArgs: ['-accel', 'tcg'],
    kvmArgs: ['-accel', 'kvm', '-cpu', 'host'],
    kvmHostArch: 'x64',
    console: 'ttyS0',
    busybox: { kind: 'host' },
    kernelImage: 'arch/x86/boot/bzImage',
  },
  {
    name: 's390x',
    elfMachine: EM.S390,
    // Debian 12 ships qemu-system-s390x in qemu-system-misc.
    qemuBinary: 'qemu-system-s390x',
    qemuPackage: 'qemu-system-misc',
    // The virtio-ccw board: its SCLP VT220 console (ttysclp0) is what -nographic connects to stdout.
    machineArgs: ['-M', 's390-ccw-virtio'],
    // `-cpu qemu` is QEMU 7.2's TCG model (z196 to z15 facilities): enough for a -march=z196 kernel and busybox.
    tcgArgs: ['-accel', 'tcg', '-cpu', 'qemu'],
    kvmArgs: ['-accel', 'kvm', '-cpu', 'host'],
    kvmHostArch: 's390x',
    console: 'ttysclp0',
    busybox: { kind: 'cache', debianArch: 's390x' },
    kernelImage: 'arch/s390/boot/bzImage',
  },
  {
    name: 'ppc64le',
    elfMachine: EM.PPC64,
    qemuBinary: 'qemu-system-ppc64',
    qemuPackage: 'qemu-system-ppc',
    // The PAPR board, booted by its firmware SLOF as on PowerVM and KVM. -nodefaults: no default NIC,
    // CD-ROM (v-scsi), VGA or USB for SLOF to probe under TCG (a whole run takes ~7 s instead of
    // ~9.5 s); that drops the default serial too, so the virtual terminal (hvc0) is put on stdout here.
    // (QEMU's x-vof=on instead of SLOF boots in ~2.5 s, but leaves the NVRAM unformatted: every
    // kernel then logs "WARNING: nvram corruption detected", which verify rightly counts as a problem.)
    machineArgs: ['-M', 'pseries', '-nodefaults', '-serial', 'stdio'],
    // QEMU asks for the Spectre mitigations (cap-*) by default and TCG has none: one warning each on
    // every boot unless they are declared absent. QEMU merges this -machine into the -M above.
    // POWER9 (pseries' default, named so a newer QEMU's default cannot change the guest): the fixture
    // runs with its radix MMU; the kernel and Debian's ppc64el busybox need POWER8 or later.
    tcgArgs: ['-accel', 'tcg', '-machine', 'cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off', '-cpu', 'power9'],
    kvmArgs: ['-accel', 'kvm', '-cpu', 'host'],
    kvmHostArch: 'ppc64',
    console: 'hvc0',
    busybox: { kind: 'cache', debianArch: 'ppc64el' },
    // pseries loads the ELF vmlinux itself: no boot wrapper, so the image is the build dir's top-level file.
    kernelImage: 'vmlinux',
  },
];

export const X86_64: Machine = MACHINES[0]!;

/** The row for an ELF e_machine; a VerifyError naming the file when verify cannot boot that architecture. */
export function machineFor(elfMachine: number, file: string): Machine {
  const m = MACHINES.find((row) => row.elfMachine === elfMachine);
  if (m) return m;
  throw new VerifyError(
    'VERIFY_ARCH',
    `${file} is built for ${machineName(elfMachine)}; verify boots ${listed(MACHINES.map((row) => row.name))} guests only`,
  );
}

/** "a, b and c". */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)!}`;
}

/** The machine a module runs on, from its ELF header. */
export async function machineOfModule(module: string): Promise<Machine> {
  let elfMachine: number;
  try {
    elfMachine = (await readElfFile(module)).ident.machine;
  } catch (e) {
    throw new VerifyError('VERIFY_INPUT', `${module} is not a kernel module: ${e instanceof Error ? e.message : String(e)}`);
  }
  return machineFor(elfMachine, module);
}

/** Whether this host's KVM could run the machine's guests at all (a foreign instruction set never can). */
export function kvmPossible(m: Machine, hostArch: string = process.arch): boolean {
  return m.kvmHostArch === hostArch;
}

/** Kernel command line for verify guests: messages on the console QEMU shows, and any panic ends the run at once. */
export function guestCmdline(m: Machine): string {
  return `console=${m.console} panic=-1`;
}

/**
 * klpforge's cache, as scripts/fetch-kernel and scripts/fetch-busybox find it:
 * $KLPFORGE_CACHE, else $XDG_CACHE_HOME/klpforge, else ~/.cache/klpforge.
 */
export function klpforgeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['KLPFORGE_CACHE'] || path.join(env['XDG_CACHE_HOME'] || path.join(homedir(), '.cache'), 'klpforge');
}

/** Where scripts/fetch-busybox ARCH leaves that architecture's busybox. */
export function cachedBusyboxPath(debianArch: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(klpforgeCacheDir(env), 'busybox', debianArch, 'busybox');
}
