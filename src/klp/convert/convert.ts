import { ElfObject, type ElfSymbol, SHN, STB } from '../../elf/index.js';
import { finalizeModule } from '../finalize.js';
import { klpSymbolName } from '../resolve.js';
import { type Exports, moduleNameOfPath } from '../symvers.js';
import { readAnnotations, type SymposAnnotation, unallocateAnnotations } from './annotations.js';
import type { KernelTarget } from './kernel-target.js';
import { replacedFunctions } from './klp-funcs.js';
import type { ConvertProblem } from './problems.js';

/**
 * klp-convert: the post-link step that lets a hand-written livepatch use what
 * the running kernel does not export. Every undefined symbol that is not
 * exported becomes `.klp.sym.OBJNAME.NAME,SYMPOS` (SHN_LIVEPATCH), and the
 * relocations against it move to `.klp.rela.OBJNAME.SECTION`, which the
 * livepatch core applies when OBJNAME is there (finalizeModule, shared with
 * `build`). Before anything is written, each function the module replaces is
 * checked against the running kernel, as `build` would have found it.
 */
export interface ConvertContext {
  exports: Exports;
  /** vmlinux or a module of the running kernel, by objname; undefined when it was not given. */
  target(objname: string): Promise<KernelTarget | undefined>;
  /** The modules (objnames) whose symbol tables have `name`: asked only when vmlinux and the patched modules lack it. */
  modulesDefining(name: string): Promise<string[]>;
}

export interface ConvertResult {
  ko: ElfObject;
  converted: Array<{ name: string; objname: string; sympos: number; relocations: number }>;
  /** Exported symbols, left to the module loader's normal linking. */
  linked: string[];
  replaced: Array<{ objname: string; name: string; sympos: number }>;
  warnings: string[];
  problems: ConvertProblem[];
}

const X86_64 = 62;

export async function convertModule(ko: ElfObject, moduleName: string, ctx: ConvertContext): Promise<ConvertResult> {
  const result: ConvertResult = { ko, converted: [], linked: [], replaced: [], warnings: [], problems: [] };
  if (ko.ident.machine !== X86_64) {
    result.problems.push({
      code: 'CONVERT_ARCH',
      message: `${moduleName}: klpforge convert knows x86_64 modules only (this is machine ${ko.ident.machine})`,
    });
    return result;
  }
  const { annotations, problems } = readAnnotations(ko, moduleName);
  result.problems.push(...problems);
  const replaced = replacedFunctions(ko);
  const patchedModules = [...new Set(replaced.map((f) => f.objname).filter((o) => o !== 'vmlinux'))];
  for (const f of replaced) {
    const target = await ctx.target(f.objname);
    if (target === undefined) {
      result.warnings.push(`${f.name} (${f.where}) replaces a function of ${f.objname}, whose .ko was not given (--modules): not checked`);
      continue;
    }
    const checked = checkReplaced(f, target, moduleName);
    result.problems.push(...checked.problems);
    result.warnings.push(...checked.warnings);
    result.replaced.push({ objname: f.objname, name: f.name, sympos: f.sympos });
  }

  const symbols: ElfSymbol[] = ko.symbols.map((s) => ({ ...s }));
  const uses = relocationCounts(ko);
  for (const [i, s] of symbols.entries()) {
    if (i === 0 || s.shndx !== SHN.UNDEF || s.reserved !== 0 || s.name === '' || s.bind === STB.LOCAL || s.name.startsWith('.klp.sym.'))
      continue;
    const found = await resolve(s.name, annotations.get(s.name), patchedModules, ctx, moduleName);
    if ('problem' in found) {
      result.problems.push(found.problem);
      continue;
    }
    if (found.kind === 'link') {
      result.linked.push(s.name);
      continue;
    }
    symbols[i] = { ...s, name: klpSymbolName(found.objname, s.name, found.sympos), nameOffset: undefined };
    result.converted.push({ name: s.name, objname: found.objname, sympos: found.sympos, relocations: uses.get(i) ?? 0 });
  }
  if (result.problems.length > 0) return result;

  const symtab = ko.symtab!;
  const renamed = new ElfObject(
    ko.ident,
    ko.sections.map((sec, i) => (i === symtab ? { ...sec, body: { kind: 'symtab' as const, symbols } } : sec)),
    ko.shstrndx,
    ko.programHeaders,
  );
  const finalized = finalizeModule(renamed, ctx.exports, moduleName);
  result.problems.push(...finalized.problems.map((p) => ({ code: 'POST_LINK' as const, message: p.message })));
  result.ko = unallocateAnnotations(finalized.ko);
  return result;
}

type Found = { kind: 'link' } | { kind: 'klp'; objname: string; sympos: number } | { problem: ConvertProblem };

/**
 * Where a symbol the module uses is: exported (linked as usual, unless by a
 * module this livepatch patches: a normal link would make the livepatch
 * depend on it), named by an annotation, unique in vmlinux, or unique in the
 * patched modules, then in any module.
 */
async function resolve(
  name: string,
  annotation: SymposAnnotation | undefined,
  patchedModules: readonly string[],
  ctx: ConvertContext,
  moduleName: string,
): Promise<Found> {
  const exp = ctx.exports.get(name);
  if (exp && (exp.owner === 'vmlinux' || !patchedModules.includes(moduleNameOfPath(exp.owner)))) return { kind: 'link' };
  if (annotation) {
    const target = await ctx.target(annotation.objname);
    const count = target?.occurrences(name).length ?? 0;
    const fits = annotation.sympos === 0 ? count === 1 : annotation.sympos <= count;
    if (!fits)
      return {
        problem: {
          code: 'CONVERT_ANNOTATION',
          message: `${moduleName}: KLPFORGE_SYMPOS(${name}, ${annotation.objname}, ${annotation.sympos}): ${annotation.objname} has ${count} symbol(s) named ${name}${target ? `: ${target.describe(name).join('; ')}` : ' (its .ko was not given: --modules)'}`,
        },
      };
    return { kind: 'klp', objname: annotation.objname, sympos: annotation.sympos };
  }
  const objnames = ['vmlinux', ...patchedModules];
  for (const objname of objnames) {
    const found = await uniqueIn(objname, name, ctx, moduleName);
    if (found !== undefined) return found;
  }
  const elsewhere = (await ctx.modulesDefining(name)).filter((m) => !objnames.includes(m));
  if (elsewhere.length === 1) return (await uniqueIn(elsewhere[0]!, name, ctx, moduleName))!;
  if (elsewhere.length > 1)
    return {
      problem: {
        code: 'CONVERT_AMBIGUOUS',
        message: `${moduleName}: ${name} is defined by several modules (${elsewhere.join(', ')}): say which with KLPFORGE_SYMPOS(${name}, MODULE, POS) (kernel-headers/klpforge-convert.h)`,
      },
    };
  return {
    problem: {
      code: 'CONVERT_UNRESOLVED',
      message: `${moduleName}: ${name} is used but exists nowhere in the running kernel (not exported, not in vmlinux${patchedModules.length > 0 ? ` or ${patchedModules.join(', ')}` : ''}, not in any module given): is it spelled right, and is this the kernel the module is for?`,
    },
  };
}

async function uniqueIn(objname: string, name: string, ctx: ConvertContext, moduleName: string): Promise<Found | undefined> {
  const target = await ctx.target(objname);
  const found = target?.occurrences(name) ?? [];
  if (found.length === 0) return undefined;
  if (found.length === 1) return { kind: 'klp', objname, sympos: 0 };
  return {
    problem: {
      code: 'CONVERT_AMBIGUOUS',
      message: `${moduleName}: ${objname} has ${found.length} symbols named ${name} (${target!.describe(name).join('; ')}): say which with KLPFORGE_SYMPOS(${name}, ${objname}, POS) (kernel-headers/klpforge-convert.h)`,
    },
  };
}

/** The replaced function must be there, once or at the position the module says, with an ftrace entry. */
function checkReplaced(
  f: { objname: string; name: string; sympos: number; where: string; newFunc: string },
  target: KernelTarget,
  moduleName: string,
): { problems: ConvertProblem[]; warnings: string[] } {
  const problems: ConvertProblem[] = [];
  const warnings: string[] = [];
  const found = target.occurrences(f.name);
  const what = `${moduleName}: klp_func ${f.name} (${f.where}, replaced by ${f.newFunc})`;
  if (found.length === 0) {
    const clones = target.clonesOf(f.name);
    if (clones.length > 0)
      problems.push({
        code: 'CONVERT_CLONE_ONLY',
        message: `${what}: ${f.objname} has no ${f.name}, only gcc's clone(s) ${clones.join(', ')}, whose arguments gcc rewrote: replace its callers, or replace the clone itself (old_name = "${clones[0]}") only with a function taking the clone's real arguments, read from its disassembly`,
      });
    else
      problems.push({
        code: 'CONVERT_INLINED',
        message: `${what}: ${f.objname} has no out-of-line ${f.name}: gcc inlined it into every caller (or it does not exist in this kernel): replace its callers instead`,
      });
    return { problems, warnings };
  }
  if ((f.sympos === 0 && found.length > 1) || f.sympos > found.length) {
    problems.push({
      code: 'CONVERT_SYMPOS',
      message: `${what}: old_sympos ${f.sympos}, but ${f.objname} has ${found.length} ${f.name}: ${target.describe(f.name).join('; ')}: set .old_sympos to the one meant`,
    });
    return { problems, warnings };
  }
  const occ = found[f.sympos === 0 ? 0 : f.sympos - 1]!;
  const ftrace = target.hasFtraceEntry(occ);
  if (ftrace === false)
    problems.push({
      code: 'CONVERT_NO_FTRACE',
      message: `${what}: ${f.objname}'s ${f.name} has no ftrace entry (notrace, or too early to trace): the livepatch core cannot redirect it: replace its callers`,
    });
  if (ftrace === undefined) warnings.push(`${f.objname} has no __mcount_loc to tell whether ${f.name} has an ftrace entry: not checked`);
  const callers = target.sameFileCallers(occ) ?? [];
  if (callers.length > 0)
    warnings.push(
      `IPA-RA: ${f.name} is replaced; its callers in the same file ${callers.join(', ')} may rely on registers the old ${f.name} left untouched (gcc's -fipa-ra): check the new code clobbers no more, or replace the callers too`,
    );
  return { problems, warnings };
}

/** How many relocations name each symbol. */
function relocationCounts(ko: ElfObject): Map<number, number> {
  const counts = new Map<number, number>();
  for (const sec of ko.sections)
    if (sec.body.kind === 'relocations') for (const r of sec.body.table) counts.set(r.symbol, (counts.get(r.symbol) ?? 0) + 1);
  return counts;
}
