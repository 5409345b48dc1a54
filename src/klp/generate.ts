import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type ElfObject, parseElf, readElfFile, serializeElf } from '../elf/index.js';
import type { ObjectOwner } from '../orchestrator/kbuild/object-owner.js';
import type { Runner } from '../orchestrator/runners/runner.js';
import { GeneratorError } from './errors.js';
import { finalizeModule, sectionObjectsOf } from './finalize.js';
import { hookSource } from './hook-source.js';
import { kbuildModule } from './kbuild-module.js';
import { moduleLinkGlobals } from './module-link.js';
import { patchGlobals } from './patch-globals.js';
import { type PatchedFunction, type PreparedObject, prepareObject } from './prepare.js';
import type { GeneratorProblem } from './problems.js';
import type { SymbolTarget } from './resolve.js';
import { KallsymsIndex } from './sympos.js';
import { type Exports, parseSymvers } from './symvers.js';

export interface GeneratorInput {
  /** Relative path in the build (`fs/proc/cmdline.o`), what it is linked into, and the differ's output for it. */
  object: string;
  owner: ObjectOwner;
  output: ElfObject;
}

export interface GenerateOptions {
  objects: readonly GeneratorInput[];
  /** The kernel build tree the module is built against (has Module.symvers, .config, scripts). */
  buildDir: string;
  /** The running kernel's vmlinux: sympos are counted in its symbol table. */
  vmlinux: string;
  /** The running kernel's copy of a module (`fs/binfmt_misc.ko` → path); defaults to the build tree's. */
  moduleFile?: (ko: string) => string;
  /** Livepatch name: the module is `livepatch-NAME.ko`. */
  name: string;
  replace: boolean;
  /** Scratch directory (the module is built in WORK/module). */
  workDir: string;
  /** Where `livepatch-NAME.ko` is written. */
  outputDir: string;
  entrySizes?: ReadonlyMap<string, number>;
  runner?: Runner;
  jobs?: number;
  /** make variables for the module build (CC=, KERNELRELEASE=): those the build tree was configured with. */
  makeVars?: readonly string[];
  /**
   * The build's exports and the running kernel's symbols, already being read
   * (loadKernelSymbols on the same buildDir and vmlinux): reading a vmlinux
   * takes ~0.4 s, which a caller can overlap with its compiles.
   */
  kernel?: Promise<KernelSymbols>;
}

/** What every generation needs from the kernel: the build's exported symbols and the running vmlinux's symbol table. */
export interface KernelSymbols {
  exports: Exports;
  vmlinux: SymbolTarget;
}

/** `bytes`: the vmlinux file's contents when already read (the checks read it too). */
export async function loadKernelSymbols(buildDir: string, vmlinux: string, bytes?: Buffer): Promise<KernelSymbols> {
  const [symvers, elf] = await Promise.all([
    readFile(path.join(buildDir, 'Module.symvers'), 'utf8').catch(() => {
      throw new GeneratorError([
        { code: 'MODULE_BUILD_FAILED', message: `${buildDir} has no Module.symvers: it must be a complete kernel build (make modules)` },
      ]);
    }),
    bytes ? parseElf(bytes, vmlinux) : readElfFile(vmlinux),
  ]);
  return { exports: parseSymvers(symvers), vmlinux: { objname: 'vmlinux', symbols: new KallsymsIndex(elf, 'vmlinux') } };
}

export interface GenerateResult {
  ko: string;
  objects: Array<{ object: string; objname: string; functions: PatchedFunction[]; callbacks: string[] }>;
  klpRelocations: Array<{ name: string; entries: number }>;
  warnings: string[];
}

/**
 * Differ outputs → livepatch module: resolve every symbol (all problems are
 * reported before anything is built), generate the klp_patch source, build
 * with kbuild, then mark the klp relocations and symbols in the linked `.ko`.
 */
export async function generateModule(o: GenerateOptions): Promise<GenerateResult> {
  const { exports, vmlinux } = await (o.kernel ?? loadKernelSymbols(o.buildDir, o.vmlinux));
  const modules = new Map<string, SymbolTarget>();
  const moduleTarget = async (owner: Extract<ObjectOwner, { kind: 'module' }>): Promise<SymbolTarget> => {
    let t = modules.get(owner.ko);
    if (!t) {
      const file = o.moduleFile ? o.moduleFile(owner.ko) : path.join(o.buildDir, owner.ko);
      t = { objname: owner.name, symbols: new KallsymsIndex(await readElfFile(file), 'module') };
      modules.set(owner.ko, t);
    }
    return t;
  };

  const prepared: PreparedObject[] = [];
  const sorted = [...o.objects].sort((a, b) => a.object.localeCompare(b.object));
  // Read before any object is prepared: prepareObject rewrites the outputs in place.
  const globals = patchGlobals(sorted);
  // What the module's link always adds counts as the livepatch's own: the objects' definitions first.
  const machine = sorted[0]?.output.ident.machine;
  const linked = machine === undefined ? new Map<string, string>() : await moduleLinkGlobals(o.buildDir, machine);
  const own = new Map([...linked, ...globals.globals]);
  for (const [i, input] of sorted.entries()) {
    const module = input.owner.kind === 'module' ? await moduleTarget(input.owner) : undefined;
    prepared.push(
      prepareObject(
        input.output,
        { exports, vmlinux, patchGlobals: own, ...(module ? { module } : {}) },
        {
          object: input.object,
          anchorPrefix: `__klpforge_${i}_`,
          ...(o.entrySizes ? { entrySizes: o.entrySizes } : {}),
        },
      ),
    );
  }
  const hook = hookSource(prepared, { replace: o.replace, description: `livepatch ${o.name} built by klpforge` });
  const problems: GeneratorProblem[] = [...globals.problems, ...prepared.flatMap((p) => p.problems), ...hook.problems];
  // Callbacks alone make a livepatch (kpatch's callback-only patches): its objects then have empty klp_func arrays.
  if (prepared.every((p) => p.functions.length === 0 && p.callbacks.length === 0) && problems.length === 0) {
    problems.push({
      code: 'UNPATCHABLE_FUNCTION',
      message: 'no function to patch: the differ found changes but none in a function ftrace can redirect, and no callback',
    });
  }
  if (problems.length > 0) throw new GeneratorError(problems);

  const moduleFile = `livepatch-${o.name}`;
  const built = await kbuildModule({
    buildDir: o.buildDir,
    moduleFile,
    dir: path.join(o.workDir, 'module'),
    hookSource: hook.source,
    prepared,
    ...(o.runner ? { runner: o.runner } : {}),
    ...(o.jobs ? { jobs: o.jobs } : {}),
    ...(o.makeVars ? { makeVars: o.makeVars } : {}),
  });
  const final = finalizeModule(parseElf(await readFile(built.ko), built.ko), exports, moduleFile, sectionObjectsOf(prepared));
  if (final.problems.length > 0) throw new GeneratorError(final.problems);

  await mkdir(o.outputDir, { recursive: true });
  const out = path.join(o.outputDir, `${moduleFile}.ko`);
  // Write then rename: a reader never sees half a module, and a failed write (a full disk) leaves nothing behind.
  try {
    await writeFile(`${out}.tmp`, serializeElf(final.ko));
    await rename(`${out}.tmp`, out);
  } catch (e) {
    await rm(`${out}.tmp`, { force: true });
    throw e;
  }
  return {
    ko: out,
    objects: prepared.map((p) => ({
      object: p.object,
      objname: p.objname,
      functions: p.functions,
      callbacks: p.callbacks.map((c) => c.kind),
    })),
    klpRelocations: final.klpSections,
    warnings: [...prepared.flatMap((p) => p.warnings), ...built.warnings],
  };
}
