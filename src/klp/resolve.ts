import type { PatchGlobals } from './patch-globals.js';
import type { KallsymsIndex } from './sympos.js';
import { type GeneratorProblem, problem } from './problems.js';
import { type Exports, moduleNameOfPath } from './symvers.js';

/** One object the livepatch core can look symbols up in: vmlinux or a module, by its kallsyms. */
export interface SymbolTarget {
  /** `vmlinux` or the module's name as the kernel knows it (`binfmt_misc`). */
  objname: string;
  symbols: KallsymsIndex;
}

/** Where the patched object lives, and what it can link against. */
export interface ResolveContext {
  exports: Exports;
  vmlinux: SymbolTarget;
  /** The module the patched object belongs to; undefined for vmlinux objects. */
  module?: SymbolTarget;
  /** Globals the livepatch's own objects define (patchGlobals): found there before the running kernel is asked. */
  patchGlobals?: PatchGlobals;
}

export type Resolution =
  /** Exported by vmlinux (or, for vmlinux code, by a module): a normal relocation modpost can check. */
  | { kind: 'link' }
  /** Defined by another object of this livepatch (`object`): a plain undefined symbol the module's own link resolves. */
  | { kind: 'patch'; object: string }
  /** A klp relocation against `.klp.sym.OBJNAME.NAME,SYMPOS`. */
  | { kind: 'klp'; objname: string; name: string; sympos: number }
  | { kind: 'problem'; problem: GeneratorProblem };

export interface SymbolNeed {
  /** The name in the running kernel. */
  name: string;
  local: boolean;
  /** Source file name of the patched object (`cmdline.c`): which same-named local is meant. */
  file?: string;
  /** The object's other locals: which of several same-named files is meant. */
  neighbours?: readonly string[];
  /** The object file, and the function or table that needs it, for messages. */
  object: string;
  where: string;
}

/** The klp symbol name the livepatch core parses (`.klp.sym.%55[^.].%511[^,],%lu`). */
export function klpSymbolName(objname: string, name: string, sympos: number): string {
  return `.klp.sym.${objname}.${name},${sympos}`;
}

/**
 * Decides how the livepatch reaches a symbol it does not define itself. A
 * global another object of the same livepatch defines comes first, exported
 * or not: the module's own link binds a plain reference to that definition
 * (the new code), where a klp symbol would reach the running kernel's old one.
 * A module's own symbols always go through klp relocations, exported or not:
 * a normal relocation would make the livepatch depend on the module, and it
 * must load whether or not that module is loaded.
 */
export function resolveSymbol(need: SymbolNeed, ctx: ResolveContext): Resolution {
  if (!need.local) {
    const definer = ctx.patchGlobals?.get(need.name);
    if (definer !== undefined) return { kind: 'patch', object: definer };
    const exp = ctx.exports.get(need.name);
    if (exp?.owner === 'vmlinux') return { kind: 'link' };
    const exporter = exp ? moduleNameOfPath(exp.owner) : undefined;
    // Patched module code calling another module's export (pcspkr → input_core): a normal relocation
    // would make the livepatch itself depend on that module. A klp relocation applied when the patched
    // module loads finds it instead: the patched module depends on its exporter, so it is loaded by then.
    if (exporter !== undefined && ctx.module && exporter !== ctx.module.objname)
      return { kind: 'klp', objname: exporter, name: need.name, sympos: 0 };
    if (exporter !== undefined && !ctx.module) return { kind: 'link' };
  }
  // A local lives in its own file, hence in the patched object's target; a global may be in the module or vmlinux.
  const targets = ctx.module ? (need.local ? [ctx.module] : [ctx.module, ctx.vmlinux]) : [ctx.vmlinux];
  for (const t of targets) {
    const r = t.symbols.sympos(need.name, need.local ? need.file : '', need.neighbours);
    if (r.found) return { kind: 'klp', objname: t.objname, name: need.name, sympos: r.sympos };
    if (r.reason === 'ambiguous') {
      return { kind: 'problem', problem: problem.ambiguous(need.object, need.name, need.where, t.objname, r.candidates) };
    }
  }
  const last = targets[targets.length - 1]!;
  return {
    kind: 'problem',
    problem: problem.unresolved(need.object, need.name, need.where, targets.map((t) => t.objname).join(' or ') || last.objname),
  };
}
