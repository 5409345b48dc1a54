import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { serializeElf } from '../elf/index.js';
import { HostRunner, type Runner } from '../orchestrator/runners/runner.js';
import { GeneratorError } from './errors.js';
import type { PreparedObject } from './prepare.js';

export interface KbuildModuleOptions {
  /** The kernel build tree to build against (make -C): vermagic, config and Module.symvers come from it. It is only read. */
  buildDir: string;
  /** Module file name without `.ko` (`livepatch-fix`). */
  moduleFile: string;
  /** Directory the module is built in (make M=); emptied first. */
  dir: string;
  hookSource: string;
  prepared: readonly PreparedObject[];
  runner?: Runner;
  jobs?: number;
  /** make variables the build tree was configured with (CC=gcc-12, KERNELRELEASE=…). */
  makeVars?: readonly string[];
}

export interface KbuildModuleResult {
  ko: string;
  log: string;
  warnings: string[];
}

/**
 * Builds the livepatch with the kernel's own kbuild, so vermagic, the module
 * layout, modinfo and modpost's checks are the kernel's. The prepared objects
 * go in as prebuilt objects (kbuild has no rule for them and links them as
 * they are). Their `.klp.sym.*` symbols are undefined until the post-link
 * step; modpost would reject them, so it runs in warning mode and its
 * warnings about anything else are reported.
 */
export async function kbuildModule(o: KbuildModuleOptions): Promise<KbuildModuleResult> {
  await rm(o.dir, { recursive: true, force: true });
  await mkdir(o.dir, { recursive: true });
  const objects = o.prepared.map((_, i) => `klpforge-${i}.o`);
  await Promise.all(o.prepared.map((p, i) => writeFile(path.join(o.dir, objects[i]!), serializeElf(p.elf))));
  // With MODVERSIONS, modpost reads each object's .cmd file for the versions of what it exports (6.0+):
  // the prepared objects export nothing, so theirs is empty.
  await Promise.all(objects.map((obj) => writeFile(path.join(o.dir, `.${obj}.cmd`), '')));
  await writeFile(path.join(o.dir, 'klpforge-hook.c'), o.hookSource);
  await writeFile(
    path.join(o.dir, 'Kbuild'),
    [`obj-m := ${o.moduleFile}.o`, `${o.moduleFile}-y := klpforge-hook.o ${objects.join(' ')}`, ''].join('\n'),
  );
  const runner = o.runner ?? new HostRunner();
  // The build dir is a work dir named after its process: with debug info on (distribution configs) its path would be
  // in the module, and the same patch would give other bytes on every build. KCFLAGS, not the Kbuild file's ccflags-y,
  // so that modpost's NAME.mod.c, compiled by the kernel's own rules, is mapped too.
  const vars = o.makeVars ?? [];
  const kcflags = vars.find((v) => v.startsWith('KCFLAGS='))?.slice('KCFLAGS='.length);
  const prefixMap = `-ffile-prefix-map=${o.dir}=.`;
  const argv = [
    'make',
    '-C',
    o.buildDir,
    `M=${o.dir}`,
    `-j${o.jobs ?? 2}`,
    ...vars.filter((v) => !v.startsWith('KCFLAGS=')),
    `KCFLAGS=${kcflags ? `${kcflags} ` : ''}${prefixMap}`,
    'KBUILD_MODPOST_WARN=1',
    'modules',
  ];
  const r = await runner.run(argv, { cwd: o.buildDir });
  const log = `$ ${argv.join(' ')}\n${r.stdout}${r.stderr}`;
  const logFile = path.join(o.dir, 'build.log');
  await writeFile(logFile, log);
  if (r.exitCode !== 0) {
    const errors = r.stderr
      .split('\n')
      .filter((l) => /error|Error/.test(l))
      .slice(0, 5)
      .join('\n');
    throw new GeneratorError([
      {
        code: 'MODULE_BUILD_FAILED',
        message: `kbuild failed to build ${o.moduleFile}.ko in ${o.dir} (exit ${r.exitCode}; log: ${logFile})${errors ? `\n${errors}` : ''}`,
      },
    ]);
  }
  // The .klp.sym.* symbols are undefined on purpose (resolved by the livepatch core); anything else kbuild warns of is shown.
  // modpost stops listing unresolved symbols after a few ("suppressed N …"): every other undefined symbol was
  // checked against the running kernel before the build (resolve.ts), so that count says nothing new.
  const warnings = r.stderr
    .split('\n')
    .filter((l) => /warning|undefined!$/i.test(l) && !l.includes('.klp.sym.') && !/suppressed \d+ unresolved symbol warnings/.test(l))
    .map((l) => l.trim());
  const ko = path.join(o.dir, `${o.moduleFile}.ko`);
  await readFile(ko).catch(() => {
    throw new GeneratorError([{ code: 'MODULE_BUILD_FAILED', message: `kbuild reported success but wrote no ${ko} (log: ${logFile})` }]);
  });
  return { ko, log, warnings };
}
