import { access } from 'node:fs/promises';
import { compareCompilers, probeCompiler } from '../orchestrator/checks/compiler-check.js';
import { checkKernelConfig } from '../orchestrator/checks/config-check.js';
import { type KernelConfig, readKernelConfig } from '../orchestrator/kbuild/kconfig.js';
import { checkKernelRelease, expectedKernelRelease, type ExpectedRelease } from '../orchestrator/checks/kernel-release.js';
import { prepareView, type PreparedView, type Runner } from '../orchestrator/index.js';
import { readVmlinux } from '../orchestrator/checks/vmlinux-info.js';
import { settle, unwrap } from '../util/settle.js';
import { BuildError, type BuildReason } from './errors.js';

export interface PreflightOptions {
  sourceDir: string;
  configFile: string;
  patches: readonly string[];
  /** Work dir of this build (the view goes in WORK/patched/source). */
  patchedWorkDir: string;
  compilerWorkDir: string;
  runner: Runner;
  /** The running kernel's vmlinux, when given (-v): its compiler and release are checked. */
  vmlinux?: string;
  skipCompilerCheck: boolean;
  /** -a/--archversion: the release the module must be built for. */
  archversion?: string;
  /** The patches are for an out-of-tree module's source, not the kernel tree: no kernel view is made. */
  outOfTree?: boolean;
  /** The release the build is made for when it is not the source's own (a distribution kernel's KERNELRELEASE). */
  release?: ExpectedRelease;
  /** The compiler kbuild will run (default gcc). */
  cc?: string;
}

export interface PreflightResult {
  config: KernelConfig;
  /** The patched kernel-tree view; absent for an out-of-tree module. */
  view?: PreparedView;
  /** The given vmlinux's bytes, read once for the checks and kept for the generator (its symbols). */
  vmlinuxBytes?: Buffer;
  warnings: string[];
}

/**
 * Everything that can be checked before a compile: the config can carry a
 * livepatch, the patches apply (in a private view, never the user's tree),
 * and a given vmlinux matches the source and the compiler that will be used.
 * The independent steps (reading the vmlinux, probing the compiler, patching
 * the view) run at once; all input problems found are reported together, and
 * before any problem with the patches.
 */
export async function preflight(o: PreflightOptions): Promise<PreflightResult> {
  for (const p of o.patches) {
    await access(p).catch(() => {
      throw new BuildError('BUILD_INPUT', `${p}: no such patch file`, 1);
    });
  }
  await access(o.sourceDir).catch(() => {
    throw new BuildError('BUILD_INPUT', `${o.sourceDir}: no such source directory (-s/--sourcedir)`, 1);
  });
  const config = await readKernelConfig(o.configFile);
  const view = o.outOfTree ? undefined : settle(prepareView(o.sourceDir, o.patchedWorkDir, o.patches));
  const checked = await settle(checkInputs(o, config));
  if (!checked.ok || checked.value.errors.length > 0) await view; // nothing is still writing when the caller cleans up
  const { errors, warnings, vmlinuxBytes } = unwrap(checked);
  if (errors.length === 1) throw new BuildError('BUILD_INPUT', errors[0]!.message, 1);
  if (errors.length > 1) throw new BuildError('BUILD_INPUT', `${errors.length} problems with the inputs:`, 1, errors);
  return { config, warnings, ...(view ? { view: unwrap(await view) } : {}), ...(vmlinuxBytes ? { vmlinuxBytes } : {}) };
}

async function checkInputs(
  o: PreflightOptions,
  config: KernelConfig,
): Promise<{ errors: BuildReason[]; warnings: string[]; vmlinuxBytes?: Buffer }> {
  const problems = checkKernelConfig(config);
  const errors: BuildReason[] = problems.filter((p) => p.severity === 'error').map((p) => ({ code: p.code, message: p.message }));
  const warnings = problems.filter((p) => p.severity === 'warning').map((p) => p.message);
  if (o.vmlinux === undefined && o.archversion === undefined) return { errors, warnings };

  const probe =
    o.vmlinux !== undefined && !o.skipCompilerCheck
      ? settle(probeCompiler({ runner: o.runner, workDir: o.compilerWorkDir, ...(o.cc ? { cc: o.cc } : {}) }))
      : undefined;
  const read = o.vmlinux !== undefined ? settle(readVmlinux(o.vmlinux)) : undefined;
  const expected = o.release ?? (await expectedKernelRelease(o.sourceDir, config));
  if (o.archversion !== undefined) {
    const p = checkKernelRelease({ file: '-a/--archversion', release: o.archversion }, expected);
    if (p) errors.push({ code: p.code, message: p.message });
  }
  if (read === undefined) return { errors, warnings };
  const [vmlinux, patchCompiler] = [await read, await probe];
  const { info, bytes } = unwrap(vmlinux); // an unreadable vmlinux says so before anything about the compiler
  const p = checkKernelRelease(info, expected);
  if (p) errors.push({ code: p.code, message: p.message });
  if (patchCompiler === undefined) {
    warnings.push(
      'compiler check skipped (--skip-compiler-check): a different compiler makes different code, so unchanged functions may show as changed',
    );
  } else {
    const c = compareCompilers(info, unwrap(patchCompiler));
    if (c.status === 'mismatch') errors.push({ code: c.problem.code, message: c.problem.message });
  }
  return { errors, warnings, vmlinuxBytes: bytes };
}
