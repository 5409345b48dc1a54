import type { KernelConfig } from './kconfig.js';
import { isEnabled } from './kconfig.js';
import { SetupError } from '../setup-errors.js';
import { type CompilerPlugin, pluginOffFlags } from './compiler-plugin.js';

/**
 * The machine a kernel is built for, as kbuild and Debian's cross compilers
 * name it. One row per machine: the machine comes from the kernel's .config,
 * never from an --arch option, so a native build on that machine and a cross
 * build here take the same path (only CROSS_COMPILE differs).
 */
export interface KernelMachine {
  /** `uname -m` of the machine, and klpforge's name for it. */
  name: 'x86_64' | 's390x' | 'ppc64le';
  /** The .config option only this machine's kernels set. */
  configSymbol: string;
  /** One more option it must have (ppc64le: CONFIG_CPU_LITTLE_ENDIAN; big-endian ppc64 is another ABI). */
  alsoConfig?: string;
  /** kbuild's ARCH= (SRCARCH). */
  arch: string;
  /** node's process.arch on such a machine: there no cross compiler is needed. */
  nodeArch: NodeJS.Architecture;
  /** Debian's cross toolchain prefix (gcc-s390x-linux-gnu installs s390x-linux-gnu-gcc). */
  crossPrefix: string;
  /** The Debian package with that cross compiler, for error messages. */
  crossPackage: string;
  /**
   * Extra compiler flags for original and patched vmlinux objects, on top
   * of the kernel's own. s390x: a livepatch module is loaded more than 4 GiB
   * from vmlinux, beyond the reach of `larl`/`lrl`'s 32-bit PC-relative
   * field, so data the new code reads in vmlinux must be reached through the
   * GOT (R_390_GOTENT), which the module loader fills with full addresses
   * (kpatch-build does the same; calls already go through the PLT), and no
   * section anchors, so data is addressed by its own symbol. Module
   * objects need nothing: all modules share one 2 GiB area, and -fPIC
   * already sends their references to vmlinux through the GOT.
   */
  livepatchCflags: readonly string[];
  /**
   * The same for objects linked into modules (CFLAGS_MODULE), whose own
   * flags already differ from vmlinux's (ppc64le modules are -mcmodel=large).
   */
  livepatchModuleCflags: readonly string[];
  /**
   * Flags that give back the running kernel's code generation, added after
   * the recorded ones: the running-kernel match compares a copy of each
   * original object compiled with these. s390x: the GOT flag undone, and
   * gcc's default section anchors back, which only work without
   * -fdata-sections (fs/proc/inode.c proc_free_inode: 26 bytes without
   * anchors, 28 with them, as in vmlinux). Empty where klpforge's objects
   * already match (x86_64).
   */
  runningCflags: readonly string[];
  /** The same for module objects, undoing livepatchModuleCflags. */
  runningModuleCflags: readonly string[];
  /**
   * A gcc plugin (gcc-plugins/NAME.cc) vmlinux and module objects are
   * compiled with besides the livepatch flags; the running-kernel copies
   * load it idle.
   */
  compilerPlugin?: CompilerPlugin;
  /** The bootable image, relative to the build dir. */
  bootImage: string;
}

const MACHINES: readonly KernelMachine[] = [
  {
    name: 'x86_64',
    configSymbol: 'CONFIG_X86_64',
    arch: 'x86',
    nodeArch: 'x64',
    crossPrefix: 'x86_64-linux-gnu-',
    crossPackage: 'gcc-x86-64-linux-gnu',
    livepatchCflags: [],
    livepatchModuleCflags: [],
    runningCflags: [],
    runningModuleCflags: [],
    bootImage: 'arch/x86/boot/bzImage',
  },
  {
    name: 's390x',
    configSymbol: 'CONFIG_S390',
    arch: 's390',
    nodeArch: 's390x',
    crossPrefix: 's390x-linux-gnu-',
    crossPackage: 'gcc-s390x-linux-gnu',
    livepatchCflags: ['-mno-pic-data-is-text-relative', '-fno-section-anchors'],
    livepatchModuleCflags: [],
    runningCflags: ['-mpic-data-is-text-relative', '-fsection-anchors', '-fno-data-sections'],
    // Module objects get no flags of klpforge's, but -fdata-sections costs them their section anchors
    // too (samples/livepatch/livepatch-callbacks-busymod.c's busymod_work_func: 96 bytes, 100 in the .ko).
    runningModuleCflags: ['-fno-data-sections'],
    bootImage: 'arch/s390/boot/bzImage',
  },
  {
    name: 'ppc64le',
    configSymbol: 'CONFIG_PPC64',
    alsoConfig: 'CONFIG_CPU_LITTLE_ENDIAN',
    arch: 'powerpc',
    nodeArch: 'ppc64',
    crossPrefix: 'powerpc64le-linux-gnu-',
    crossPackage: 'gcc-powerpc64le-linux-gnu',
    // A module has a TOC of its own, so the new code cannot reach vmlinux data r2-relative as the
    // kernel's -mcmodel=medium does for a file's own data: -mcmodel=large loads every address from a
    // .toc slot, which the module loader fills. A call into vmlinux goes through a stub that switches
    // TOCs and needs a nop after the `bl` for restoring r2: the plugin gives calls to a file's own
    // functions one, and no sibling calls, whose `b` has no slot. (kpatch-build does the same.)
    // Modules are large-model already (arch/powerpc/Makefile); their calls to their own functions need
    // the plugin's nop all the same, since the livepatch is another module.
    livepatchCflags: ['-mcmodel=large', '-fno-optimize-sibling-calls'],
    livepatchModuleCflags: ['-fno-optimize-sibling-calls'],
    // -fdata-sections turns off gcc's section anchors here too, as on s390x (drivers/base/core.c's
    // devlink_class_init: 144 bytes with it, 140 without, as in vmlinux).
    runningCflags: ['-mcmodel=medium', '-foptimize-sibling-calls', '-fno-data-sections'],
    runningModuleCflags: ['-foptimize-sibling-calls', '-fno-data-sections'],
    compilerPlugin: { name: 'klp_local_calls', offArgs: ['off'] },
    // QEMU's pseries board boots the ELF vmlinux itself.
    bootImage: 'vmlinux',
  },
];

/** The machine a .config is for; a config of a machine klpforge cannot build for is a one-line error. */
export function machineOfConfig(config: KernelConfig): KernelMachine {
  const m = MACHINES.find(
    (row) => isEnabled(config, row.configSymbol) && (row.alsoConfig === undefined || isEnabled(config, row.alsoConfig)),
  );
  if (m !== undefined) return m;
  // PPC64 here is big-endian (ELFv1): the little-endian one matched its row.
  const known = ['ARM64', 'PPC64', 'LOONGARCH', 'RISCV', 'X86_32'].find((a) => isEnabled(config, `CONFIG_${a}`));
  const names = MACHINES.map((r) => r.name);
  throw new SetupError(
    'CONFIG_UNSUPPORTED_MACHINE',
    `${config.file}: a kernel for ${known === 'PPC64' ? 'big-endian PPC64' : (known ?? 'an unknown machine')}: klpforge builds livepatches for ${names.slice(0, -1).join(', ')} and ${names.at(-1)!} kernels`,
  );
}

export function machineByName(name: string): KernelMachine | undefined {
  return MACHINES.find((m) => m.name === name);
}

/** Is the machine the one klpforge runs on (no cross compiler)? */
export function isNative(m: KernelMachine, hostArch: NodeJS.Architecture = process.arch): boolean {
  return m.nodeArch === hostArch;
}

/**
 * The make variables every kbuild run for this machine needs: ARCH and
 * CROSS_COMPILE when building on another machine, and the livepatch flags
 * (CFLAGS_KERNEL for vmlinux objects, CFLAGS_MODULE for module objects; KCFLAGS stays free for klpforge's
 * -ffunction-sections). Empty for x86_64 on x86_64: cache keys and recorded
 * commands stay as they were.
 */
export function machineMakeVars(
  m: KernelMachine,
  hostArch: NodeJS.Architecture = process.arch,
  pluginFlags: readonly string[] = [],
): string[] {
  const vars = isNative(m, hostArch) ? [] : [`ARCH=${m.arch}`, `CROSS_COMPILE=${m.crossPrefix}`];
  const kernel = [...m.livepatchCflags, ...pluginFlags];
  const module = [...m.livepatchModuleCflags, ...pluginFlags];
  if (kernel.length > 0) vars.push(`CFLAGS_KERNEL=${kernel.join(' ')}`);
  if (module.length > 0) vars.push(`CFLAGS_MODULE=${module.join(' ')}`);
  return vars;
}

/** Flags added after an object's recorded ones, by what the object is linked into. */
export interface RunningCflags {
  vmlinux: readonly string[];
  module: readonly string[];
}

/** The flags after the recorded ones that give the running kernel's code back: runningCflags, the plugin idle. */
export function runningCflagsOf(m: KernelMachine): RunningCflags {
  const off = m.compilerPlugin ? pluginOffFlags(m.compilerPlugin) : [];
  return {
    vmlinux: m.runningCflags.length + off.length > 0 ? [...m.runningCflags, ...off] : [],
    module: m.runningModuleCflags.length + off.length > 0 ? [...m.runningModuleCflags, ...off] : [],
  };
}

/** The compiler kbuild runs for this machine (`gcc` natively, else the cross gcc). */
export function machineCompiler(m: KernelMachine, hostArch: NodeJS.Architecture = process.arch): string {
  return isNative(m, hostArch) ? 'gcc' : `${m.crossPrefix}gcc`;
}
