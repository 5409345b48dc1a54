import { access } from 'node:fs/promises';
import path from 'node:path';
import { ensureDebianKernel, parseDebianKernel } from '../../orchestrator/acquire/debian-kernel.js';
import { BuildError } from '../../pipeline/errors.js';
import { convertFile } from '../../pipeline/convert.js';
import { isKlpforgeError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';

export interface ConvertCommandArgs {
  module: string;
  output: string;
  vmlinux?: string;
  symvers?: string;
  modules?: string;
  kernel?: string;
  make?: string;
  cacheDir: string;
  json: boolean;
}

/** `klpforge convert MODULE.ko -o OUT.ko -v VMLINUX | --kernel debian:RELEASE`. */
export async function convertCommand(a: ConvertCommandArgs, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  try {
    const kernel = await runningKernel(a, err);
    const report = await convertFile({
      module: path.resolve(a.module),
      output: path.resolve(a.output),
      ...(a.make !== undefined ? { kbuildDir: path.resolve(a.make) } : {}),
      ...kernel,
    });
    if (a.json) {
      out(JSON.stringify({ ok: true, ...report }, null, 2));
    } else {
      for (const w of report.warnings) err(`klpforge: warning: ${w}`);
      for (const c of report.converted)
        out(
          `converted ${c.name} -> ${c.objname}${c.sympos ? `,${c.sympos}` : ''} (${c.relocations} relocation${c.relocations === 1 ? '' : 's'})`,
        );
      out(report.module);
    }
    return EXIT.OK;
  } catch (e) {
    if (a.json && isKlpforgeError(e)) {
      const reasons = e instanceof BuildError ? e.reasons : [];
      out(JSON.stringify({ ok: false, error: { code: e.code, message: e.message, exitCode: e.exitCode, reasons } }, null, 2));
    }
    throw e;
  }
}

/** The running kernel's files: a Debian release's from the cache, or -v with what sits beside it. */
async function runningKernel(
  a: ConvertCommandArgs,
  err: (line: string) => void,
): Promise<{ vmlinux: string; symvers: string; modulesDir?: string }> {
  if (a.kernel !== undefined) {
    const release = parseDebianKernel(a.kernel);
    if (release === undefined)
      throw new BuildError('BUILD_INPUT', `--kernel ${a.kernel}: expected debian:RELEASE (e.g. debian:6.1.0-57-amd64)`, 1);
    const { kernel } = await ensureDebianKernel(release, path.resolve(a.cacheDir), (l) => err(`klpforge: ${l}`));
    return { vmlinux: kernel.vmlinux, symvers: a.symvers ?? kernel.symvers, modulesDir: a.modules ?? kernel.modulesDir };
  }
  if (a.vmlinux === undefined)
    throw new BuildError(
      'BUILD_INPUT',
      'no running kernel: pass -v VMLINUX (with its Module.symvers beside it or --symvers), or --kernel debian:RELEASE',
      1,
    );
  const dir = path.dirname(path.resolve(a.vmlinux));
  const hasModules = await access(path.join(dir, 'modules.order')).then(
    () => true,
    () => false,
  );
  const modulesDir = a.modules ?? (hasModules ? dir : undefined);
  return {
    vmlinux: path.resolve(a.vmlinux),
    symvers: a.symvers ?? path.join(dir, 'Module.symvers'),
    ...(modulesDir ? { modulesDir } : {}),
  };
}
