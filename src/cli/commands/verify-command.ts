import os from 'node:os';
import path from 'node:path';
import { ensureDebianKernel, parseDebianKernel } from '../../orchestrator/acquire/debian-kernel.js';
import { modulesWithDependencies } from '../../orchestrator/acquire/kernel-modules.js';
import { VerifyError } from '../../verify/errors.js';
import { machineOfModule } from '../../verify/boot/machines.js';
import type { AcceleratorChoice } from '../../verify/boot/qemu.js';
import { failureSummary, formatReport, reportJson } from '../../verify/judge/report.js';
import { readCheckFiles, verifyModule } from '../../verify/verify.js';
import { EXIT } from '../exit-codes.js';

// Moved to options/verify.ts, where main.ts reads them without loading this module; still exported here for older imports.
export { VERIFY_DESCRIPTION, VERIFY_EPILOGUE, verifyBuilder } from '../options/verify.js';

export interface VerifyCommandArgs {
  module: string;
  kernel: string;
  check: readonly string[];
  checkFile: readonly string[];
  modules?: string;
  json: boolean;
  timeout: number;
  keep: boolean;
  accel: AcceleratorChoice;
  cacheDir?: string;
  withModule?: readonly string[];
}

/** `klpforge verify MODULE.ko --kernel bzImage`: prints the report; 0 only when every step held. */
export async function verifyCommand(a: VerifyCommandArgs, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const files = await readCheckFiles(a.checkFile.map(String));
  const release = parseDebianKernel(a.kernel);
  // klpforge fetches Debian's amd64 kernels only: another machine's module would meet a kernel it cannot load into.
  if (release !== undefined) {
    const machine = await machineOfModule(a.module);
    if (machine.name !== 'x86_64')
      throw new VerifyError(
        'VERIFY_ARCH',
        `${a.module} is an ${machine.name} module and --kernel ${a.kernel} is Debian's amd64 kernel: pass the ${machine.name} kernel image to boot (BUILD/${machine.kernelImage})`,
      );
  }
  const debian =
    release === undefined
      ? undefined
      : (
          await ensureDebianKernel(release, path.resolve(a.cacheDir ?? path.join(os.homedir(), '.cache/klpforge')), (l) =>
            err(`klpforge: ${l}`),
          )
        ).kernel;
  const wanted = (a.withModule ?? []).map(String);
  if (wanted.length > 0 && !debian)
    throw new VerifyError(
      'VERIFY_INPUT',
      '--with-module picks modules of a --kernel debian:RELEASE kernel; for a kernel you built, pass its build dir with --modules',
    );
  const moduleFiles = debian && wanted.length > 0 ? await modulesWithDependencies(debian.modulesDir, wanted) : [];
  const report = await verifyModule({
    module: a.module,
    kernel: debian ? debian.vmlinuz : a.kernel,
    ...(debian ? { genInitCpio: debian.genInitCpio } : {}),
    moduleFiles,
    checks: [...a.check.map(String), ...files.map((f) => f.text)],
    checkLabels: [...a.check.map(() => undefined), ...files.map((f) => f.label)],
    modulesDir: a.modules,
    timeoutSeconds: a.timeout,
    keep: a.keep,
    accel: a.accel,
  });
  if (a.json) out(reportJson(report));
  else for (const l of formatReport(report)) out(l);
  if (report.ok) return EXIT.OK;
  err(`klpforge: ${failureSummary(report)}`);
  return EXIT.ERROR;
}
