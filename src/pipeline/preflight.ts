import { access } from 'node:fs/promises';
import { checkCompiler } from '../orchestrator/compiler-check.js';
import { checkKernelConfig } from '../orchestrator/config-check.js';
import { type KernelConfig, readKernelConfig } from '../orchestrator/kconfig.js';
import { checkKernelRelease, expectedKernelRelease } from '../orchestrator/kernel-release.js';
import { prepareView, type PreparedView, type Runner } from '../orchestrator/index.js';
import { readVmlinuxInfo } from '../orchestrator/vmlinux-info.js';
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
}

export interface PreflightResult {
  config: KernelConfig;
  /** The patched kernel-tree view; absent for an out-of-tree module. */
  view?: PreparedView;
  warnings: string[];
}

/**
 * Everything that can be checked before a compile: the config can carry a
 * livepatch, the patches apply (in a private view, never the user's tree),
 * and a given vmlinux matches the source and the compiler that will be used.
 * All problems found are reported together.
 */
export async function preflight(o: PreflightOptions): Promise<PreflightResult> {
  for (const p of o.patches) {
    await access(p).catch(() => { throw new BuildError('BUILD_INPUT', `${p}: no such patch file`, 1); });
  }
  await access(o.sourceDir).catch(() => { throw new BuildError('BUILD_INPUT', `${o.sourceDir}: no such source directory (-s/--sourcedir)`, 1); });
  const config = await readKernelConfig(o.configFile);
  const problems = checkKernelConfig(config);
  const errors: BuildReason[] = problems.filter((p) => p.severity === 'error').map((p) => ({ code: p.code, message: p.message }));
  const warnings = problems.filter((p) => p.severity === 'warning').map((p) => p.message);

  if (o.vmlinux !== undefined || o.archversion !== undefined) {
    const expected = await expectedKernelRelease(o.sourceDir, config);
    if (o.archversion !== undefined) {
      const p = checkKernelRelease({ file: '-a/--archversion', release: o.archversion }, expected);
      if (p) errors.push({ code: p.code, message: p.message });
    }
    if (o.vmlinux !== undefined) {
      const info = await readVmlinuxInfo(o.vmlinux);
      const p = checkKernelRelease(info, expected);
      if (p) errors.push({ code: p.code, message: p.message });
      const c = await checkCompiler({ runner: o.runner, workDir: o.compilerWorkDir, target: info, skip: o.skipCompilerCheck });
      if (c.status === 'mismatch') errors.push({ code: c.problem.code, message: c.problem.message });
      if (c.status === 'skipped') warnings.push('compiler check skipped (--skip-compiler-check): a different compiler makes different code, so unchanged functions may show as changed');
    }
  }
  if (errors.length === 1) throw new BuildError('BUILD_INPUT', errors[0]!.message, 1);
  if (errors.length > 1) throw new BuildError('BUILD_INPUT', `${errors.length} problems with the inputs:`, 1, errors);

  if (o.outOfTree) return { config, warnings };
  const view = await prepareView(o.sourceDir, o.patchedWorkDir, o.patches);
  return { config, view, warnings };
}
