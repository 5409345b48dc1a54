import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { ElfPeek, readElfFile, writeElfFile, type ElfObject } from '../elf/index.js';
import { convertModule, type ConvertResult } from '../klp/convert/convert.js';
import { KernelTarget } from '../klp/convert/kernel-target.js';
import { CONVERT_REFUSALS } from '../klp/convert/problems.js';
import { moduleNameOfPath, parseSymvers } from '../klp/symvers.js';
import { HostRunner } from '../orchestrator/runners/runner.js';
import { BuildError } from './errors.js';

/**
 * `klpforge convert`'s files: the module in, the running kernel's vmlinux,
 * Module.symvers and modules (each module read only when a symbol or a
 * replaced function needs it), the converted module out.
 */
export interface ConvertOptions {
  module: string;
  /** Build the module first: `make -C KDIR M=<the module's dir> KBUILD_MODPOST_WARN=1 modules` (for make M= authors). */
  kbuildDir?: string;
  output: string;
  vmlinux: string;
  symvers: string;
  /** Searched recursively for the running kernel's .ko files. */
  modulesDir?: string;
}

export interface ConvertReport extends Omit<ConvertResult, 'ko' | 'problems'> {
  module: string;
}

export async function convertFile(o: ConvertOptions): Promise<ConvertReport> {
  if (o.kbuildDir !== undefined) await kbuildExternal(o.kbuildDir, path.dirname(o.module));
  const ko = await readElfFile(o.module);
  const moduleName = modinfoName(ko) ?? moduleNameOfPath(o.module);
  const exports = parseSymvers(
    await readFile(o.symvers, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new BuildError(
        'BUILD_INPUT',
        `${o.symvers}: cannot read the running kernel's Module.symvers (${e.code ?? e.message}): pass --symvers`,
        1,
      );
    }),
  );
  const modules = o.modulesDir ? await findModules(o.modulesDir) : new Map<string, string>();
  const targets = new Map<string, Promise<KernelTarget | undefined>>();
  const target = (objname: string): Promise<KernelTarget | undefined> => {
    let t = targets.get(objname);
    if (t === undefined) {
      const file = objname === 'vmlinux' ? o.vmlinux : modules.get(objname);
      t =
        file === undefined
          ? Promise.resolve(undefined)
          : readElfFile(file).then((elf) => new KernelTarget(objname, elf, objname === 'vmlinux' ? 'vmlinux' : 'module'));
      targets.set(objname, t);
    }
    return t;
  };
  const limit = pLimit(8);
  const modulesDefining = async (name: string): Promise<string[]> => {
    const found = await Promise.all(
      [...modules].map(([objname, file]) =>
        limit(async () => ((await ElfPeek.read(file)).symbolsNamed(name).some((s) => s.shndx !== 0) ? objname : undefined)),
      ),
    );
    return found.filter((n): n is string => n !== undefined);
  };
  const r = await convertModule(ko, moduleName, { exports, target, modulesDefining });
  if (r.problems.length > 0) {
    const refused = r.problems.every((p) => CONVERT_REFUSALS.has(p.code));
    throw new BuildError(
      'BUILD_REFUSED',
      `${o.module}: cannot convert ${moduleName} into a livepatch that is safe to load:`,
      refused ? 2 : 1,
      r.problems.map((p) => ({ code: p.code, message: p.message })),
    );
  }
  await writeElfFile(o.output, r.ko);
  const { ko: _ko, problems: _problems, ...report } = r;
  return { ...report, module: o.output };
}

/**
 * The author's `make M=` build, with modpost's unresolved symbols as warnings:
 * they are what convert is for. Every other error is the build's.
 */
async function kbuildExternal(kdir: string, moduleDir: string): Promise<void> {
  const argv = ['make', '-C', kdir, `M=${moduleDir}`, 'KBUILD_MODPOST_WARN=1', 'modules'];
  const r = await new HostRunner().run(argv, { cwd: moduleDir });
  if (r.exitCode !== 0) {
    const errors = `${r.stdout}\n${r.stderr}`
      .split('\n')
      .filter((l) => /error/i.test(l))
      .slice(0, 5);
    throw new BuildError(
      'BUILD_INPUT',
      `${argv.join(' ')} failed (exit ${r.exitCode})${errors.length > 0 ? `:\n${errors.join('\n')}` : ''}`,
      1,
    );
  }
}

/** The name the kernel gives the module: `.modinfo`'s name= (kbuild writes it), else the file's. */
function modinfoName(ko: ElfObject): string | undefined {
  const index = ko.findSection('.modinfo');
  const sec = index === undefined ? undefined : ko.section(index);
  if (sec?.body.kind !== 'bytes') return undefined;
  const entry = sec.body.data
    .toString('latin1')
    .split('\0')
    .find((e) => e.startsWith('name='));
  return entry?.slice('name='.length);
}

/** objname → path of every .ko under dir (a build dir or /lib/modules/RELEASE). */
async function findModules(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    throw new BuildError(
      'BUILD_INPUT',
      `${dir}: cannot read the modules dir (${e.code ?? e.message}): pass the running kernel's modules with --modules`,
      1,
    );
  });
  for (const e of entries)
    if (e.isFile() && e.name.endsWith('.ko')) found.set(moduleNameOfPath(e.name), path.join(e.parentPath ?? e.path, e.name));
  return found;
}
