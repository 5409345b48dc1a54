import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { configString, type KernelConfig } from '../kbuild/kconfig.js';
import { SetupError } from '../setup-errors.js';

/**
 * Does the vmlinux belong to this source tree? The kernel release
 * (UTS_RELEASE, `uname -r`) is in the vmlinux banner and is what the module's
 * vermagic must equal for the module to load; the source tree + config decide
 * the release a build of them gets. Before any build it is computed the way
 * scripts/setlocalversion does; after a build, include/config/kernel.release
 * says it exactly.
 */
export interface ExpectedRelease {
  release: string;
  /**
   * False when a suffix cannot be known without running git
   * (CONFIG_LOCALVERSION_AUTO, or a git tree that may add `+`): then only
   * `release` as a prefix is checked.
   */
  exact: boolean;
  /** Where the value came from, for messages. */
  from: string;
}

export interface ReleaseProblem {
  code: 'VMLINUX_RELEASE_MISMATCH';
  severity: 'error';
  vmlinuxRelease: string;
  expected: string;
  message: string;
}

/** `make kernelversion` without make: VERSION.PATCHLEVEL.SUBLEVEL + EXTRAVERSION from the top Makefile. */
export async function sourceKernelVersion(sourceDir: string): Promise<string> {
  const makefile = path.join(sourceDir, 'Makefile');
  let text: string;
  try {
    text = await readFile(makefile, 'utf8');
  } catch {
    throw new SetupError(
      'SOURCE_NOT_USABLE',
      `${sourceDir}: no Makefile, so not a kernel source tree: pass the kernel's source dir with -s/--sourcedir`,
    );
  }
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*=[ \\t]*(\\S*)[ \\t]*$`, 'm').exec(text)?.[1];
  const version = field('VERSION');
  if (!version) {
    throw new SetupError(
      'SOURCE_NOT_USABLE',
      `${makefile}: no VERSION line, so not the top Makefile of a kernel tree: pass the kernel's source dir with -s/--sourcedir`,
    );
  }
  const patchlevel = field('PATCHLEVEL');
  const sublevel = field('SUBLEVEL');
  return `${version}${patchlevel ? `.${patchlevel}${sublevel ? `.${sublevel}` : ''}` : ''}${field('EXTRAVERSION') ?? ''}`;
}

/**
 * The release a build of this tree with this config gets (scripts/setlocalversion):
 * kernelversion + localversion* files + CONFIG_LOCALVERSION + $LOCALVERSION +
 * an SCM suffix.
 */
export async function expectedKernelRelease(
  sourceDir: string,
  config: KernelConfig,
  env: { LOCALVERSION?: string } = process.env,
): Promise<ExpectedRelease> {
  let release = await sourceKernelVersion(sourceDir);
  const names = (await readdir(sourceDir)).filter((n) => n.startsWith('localversion') && !n.includes('~')).sort();
  for (const name of names) {
    const content = await readFile(path.join(sourceDir, name), 'utf8').catch(() => undefined);
    if (content !== undefined) release += content.replace(/\n+$/, '');
  }
  release += configString(config, 'CONFIG_LOCALVERSION') ?? '';
  release += env.LOCALVERSION ?? '';

  const auto = config.options.get('CONFIG_LOCALVERSION_AUTO') === 'y';
  const scmFile = await readFile(path.join(sourceDir, '.scmversion'), 'utf8').catch(() => undefined);
  const from = `${sourceDir} with ${config.file}`;
  if (scmFile !== undefined) {
    const scm = scmFile.replace(/\n+$/, '');
    if (auto) release += scm;
    else if (env.LOCALVERSION === undefined && scm !== '') release += '+';
    return { release, exact: true, from };
  }
  const isGitTop = await stat(path.join(sourceDir, '.git')).then(
    () => true,
    () => false,
  );
  if (isGitTop && (auto || env.LOCALVERSION === undefined)) return { release, exact: false, from };
  return { release, exact: true, from };
}

/** include/config/kernel.release of a configured or built build dir, if there. */
export async function buildKernelRelease(buildDir: string): Promise<ExpectedRelease | undefined> {
  const file = path.join(buildDir, 'include/config/kernel.release');
  const text = await readFile(file, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : { release: text.trim(), exact: true, from: file };
}

/** A problem when the vmlinux's release is not the expected one (or, when not exact, does not start with it). */
export function checkKernelRelease(vmlinux: { file: string; release: string }, expected: ExpectedRelease): ReleaseProblem | undefined {
  const ok = expected.exact ? vmlinux.release === expected.release : vmlinux.release.startsWith(expected.release);
  if (ok) return undefined;
  return {
    code: 'VMLINUX_RELEASE_MISMATCH',
    severity: 'error',
    vmlinuxRelease: vmlinux.release,
    expected: expected.release,
    message:
      `${vmlinux.file} is Linux ${vmlinux.release}, but ${expected.from} ${expected.exact ? 'builds' : 'builds a release starting with'} ${expected.release}: ` +
      'pass the vmlinux of the kernel this source and config built (the module would only load into that kernel), or the source and config of this vmlinux',
  };
}
