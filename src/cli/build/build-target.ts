import { access } from 'node:fs/promises';
import path from 'node:path';
import type { ExpectedRelease } from '../../orchestrator/checks/kernel-release.js';
import { type DebianKernel, ensureDebianKernel, parseDebianKernel } from '../../orchestrator/acquire/debian-kernel.js';
import { readKernelConfig } from '../../orchestrator/kbuild/kconfig.js';
import { ensureCompilerPlugin, pluginFlags } from '../../orchestrator/kbuild/compiler-plugin.js';
import { type KernelMachine, machineCompiler, machineMakeVars, machineOfConfig } from '../../orchestrator/kbuild/machine.js';
import { BuildError } from '../../pipeline/errors.js';
import type { StageClock } from '../../pipeline/stages.js';

/**
 * The kernel a build is for, and where each of its parts comes from: given
 * by hand (-s/-c/-v), or a distribution release klpforge fetches
 * (--kernel debian:RELEASE, with -s/-c/-v overriding its parts).
 */
export interface BuildTarget {
  sourceDir: string;
  configFile: string;
  /** The running kernel's vmlinux (for -s/-c/-v builds: given, or the original build's). */
  vmlinux?: string;
  /** Where the running kernel's .ko files are, by their build paths. */
  modulesDir?: string;
  /** make variables every kbuild run for this kernel gets. */
  makeVars: string[];
  cc?: string;
  /** The release the module is built for, when the source alone does not say it. */
  release?: ExpectedRelease;
  /** How the original side is made. */
  original: 'lazy' | 'full';
  /** Chosen by klpforge (no --original): a lazy original that cannot serve the patch falls back to the full one. */
  chosen: boolean;
  /** For the lazy original: the running kernel's Module.symvers and modules.order. */
  symvers?: string;
  modulesOrder?: string;
  /** What `--verify` boots. */
  bootImage?: string;
  /** The machine the kernel is for (from its .config). */
  machine: KernelMachine;
  debian?: DebianKernel;
}

/** The checkout's gcc-plugins/ (from dist/src/cli/build). */
const GCC_PLUGINS = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../../gcc-plugins');

export interface TargetArgs {
  sourcedir?: string;
  config?: string;
  vmlinux?: string;
  kernel?: string;
  original?: 'lazy' | 'full';
  cacheDir: string;
  /** --oot-module: the module builds against a complete kernel tree, so the original is the full one. */
  outOfTree?: boolean;
}

export async function resolveTarget(a: TargetArgs, clock: StageClock, note: (line: string) => void): Promise<BuildTarget> {
  const release = a.kernel !== undefined ? parseDebianKernel(a.kernel) : undefined;
  if (release === undefined) return handTarget(a);
  const { kernel } = await clock.run(
    'kernel',
    () => ensureDebianKernel(release, path.resolve(a.cacheDir), (l) => note(l)),
    (k) =>
      `Debian ${k.kernel.release} (${k.kernel.version})${k.timings ? `, fetched in ${((k.timings.download + k.timings.unpack) / 1000).toFixed(0)} s` : ', cached'}`,
  );
  const original = a.original ?? 'lazy';
  if (original === 'full') {
    throw new BuildError(
      'BUILD_INPUT',
      `--original full is not available for a Debian kernel: building all of ${release}'s ~3,850 modules takes hours on 2 cores, and the lazy original compiles only what the patch reaches`,
      1,
    );
  }
  const configFile = path.resolve(a.config ?? kernel.config);
  return {
    sourceDir: path.resolve(a.sourcedir ?? kernel.sourceDir),
    configFile,
    vmlinux: path.resolve(a.vmlinux ?? kernel.vmlinux),
    modulesDir: kernel.modulesDir,
    makeVars: [`CC=${kernel.cc}`, `KERNELRELEASE=${release}`],
    cc: kernel.cc,
    release: { release, exact: true, from: `debian:${release}` },
    original,
    chosen: false, // the full original is refused here: nothing to fall back to
    symvers: kernel.symvers,
    modulesOrder: path.join(path.dirname(kernel.modulesDir), 'modules.order'),
    bootImage: kernel.vmlinuz,
    debian: kernel,
    machine: machineOfConfig(await readKernelConfig(configFile)),
  };
}

/**
 * -s/-c/-v: a kernel built by hand. The lazy original is sound when the
 * running kernel's build dir is at hand (-v's vmlinux with Module.symvers and
 * modules.order beside it): then it is the default, else the full original.
 */
async function handTarget(a: TargetArgs): Promise<BuildTarget> {
  if (a.sourcedir === undefined) {
    throw new BuildError(
      'BUILD_INPUT',
      'no kernel source: pass -s/--sourcedir (with -c and -v for the running kernel), or --kernel debian:RELEASE',
      1,
    );
  }
  const sourceDir = path.resolve(a.sourcedir);
  const configFile = path.resolve(a.config ?? path.join(sourceDir, '.config'));
  // The machine is the .config's: a cross build here and a native one there run the same steps.
  const machine = machineOfConfig(await readKernelConfig(configFile));
  const cc = machineCompiler(machine);
  const plugin = machine.compilerPlugin;
  const so = plugin
    ? await ensureCompilerPlugin({ plugin, cc, source: path.join(GCC_PLUGINS, `${plugin.name}.cc`), cacheDir: path.resolve(a.cacheDir) })
    : undefined;
  const base = {
    sourceDir,
    configFile,
    machine,
    makeVars: machineMakeVars(machine, process.arch, so ? pluginFlags(so) : []),
    ...(cc !== 'gcc' ? { cc } : {}),
    chosen: a.original === undefined,
    ...(a.vmlinux ? { vmlinux: path.resolve(a.vmlinux) } : {}),
  };
  if (a.original === 'full' || a.outOfTree) return { ...base, original: 'full' };
  if (a.original === undefined) {
    const dir = base.vmlinux ? path.dirname(base.vmlinux) : undefined;
    const beside = dir
      ? await Promise.all(
          ['Module.symvers', 'modules.order'].map((f) =>
            access(path.join(dir, f)).then(
              () => true,
              () => false,
            ),
          ),
        )
      : [false];
    if (!beside.every(Boolean)) return { ...base, original: 'full' };
  }
  if (base.vmlinux === undefined) {
    throw new BuildError(
      'BUILD_INPUT',
      '--original lazy needs the running kernel: pass -v/--vmlinux from its build dir (with Module.symvers and modules.order beside it)',
      1,
    );
  }
  const dir = path.dirname(base.vmlinux);
  const symvers = path.join(dir, 'Module.symvers');
  await access(symvers).catch(() => {
    throw new BuildError(
      'BUILD_INPUT',
      `--original lazy needs the running kernel's Module.symvers, and ${dir} has none: pass -v from the kernel's build dir, or build the full original (--original full)`,
      1,
    );
  });
  return { ...base, original: 'lazy', modulesDir: dir, symvers, modulesOrder: path.join(dir, 'modules.order') };
}
