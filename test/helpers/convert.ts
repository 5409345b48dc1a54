import { cp } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { klpforge, type CliRun } from './integration.js';
import { REPO_ROOT, type FixtureKernel } from './kernel.js';

/** kernel-fixtures/convert: hand-written livepatch modules, one directory per case (see the README there). */
export const CONVERT_DIR = path.join(REPO_ROOT, 'kernel-fixtures/convert');

/** `klpforge convert --json` (docs/cli.md): the report on success, `error` with its reasons on a refusal. */
export interface ConvertReport {
  ok: boolean;
  module?: string;
  converted?: Array<{ name: string; objname: string; sympos: number; relocations: number }>;
  linked?: string[];
  replaced?: Array<{ objname: string; name: string; sympos: number }>;
  warnings?: string[];
  error?: { code: string; message: string; exitCode?: number; reasons?: Array<{ code: string; message: string }> };
}

/**
 * Builds kernel-fixtures/convert/CASE as its author would, into `dir` (a copy:
 * nothing is built inside the checkout): `make M=` against the fixture's
 * plain build, the one that boots. KBUILD_MODPOST_WARN=1 because modpost
 * otherwise stops at the symbols the kernel does not export, which are the
 * ones convert is for. Returns the module, `livepatch-CASE.ko`.
 */
export async function buildConvertCase(kernel: FixtureKernel, fixture: string, dir: string, kcflags?: string): Promise<string> {
  await cp(path.join(CONVERT_DIR, fixture), dir, { recursive: true });
  await execa(
    'make',
    [
      '-C',
      kernel.plain,
      `M=${dir}`,
      `KLPFORGE_HEADERS=${path.join(REPO_ROOT, 'kernel-headers')}`,
      'KBUILD_MODPOST_WARN=1',
      ...(kcflags === undefined ? [] : [`KCFLAGS=${kcflags}`]),
      'modules',
    ],
    { stdin: 'ignore' },
  );
  return path.join(dir, `livepatch-${fixture}.ko`);
}

/** `klpforge convert KO -o OUT -v <fixture vmlinux> --json`: its Module.symvers and modules are found beside it. */
export async function convertModule(kernel: FixtureKernel, ko: string, out: string): Promise<{ run: CliRun; report?: ConvertReport }> {
  const run = await klpforge(['convert', ko, '-o', out, '-v', kernel.vmlinux, '--json']);
  try {
    return { run, report: JSON.parse(run.stdout) as ConvertReport };
  } catch {
    return { run };
  }
}

/** The reasons of a refusal, for `toEqual([expect.objectContaining(...)])`. */
export function refusalReasons(report: ConvertReport | undefined): Array<{ code: string; message: string }> {
  return report?.error?.reasons ?? [];
}
