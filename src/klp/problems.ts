/**
 * Why the generator can't make a module, as values: each names the symbol,
 * the function that needs it and what the author can do.
 */
export type GeneratorProblemCode =
  | 'UNRESOLVED_SYMBOL'
  | 'AMBIGUOUS_SYMBOL'
  | 'DUPLICATE_GLOBAL'
  | 'MODULE_STATIC_KEY'
  | 'MODULE_SPECIAL_RELOCATION'
  | 'UNPATCHABLE_FUNCTION'
  | 'MODULE_BUILD_FAILED'
  | 'POST_LINK';

export interface GeneratorProblem {
  code: GeneratorProblemCode;
  /** The object file the problem was found in (e.g. `fs/proc/cmdline.o`). */
  object?: string;
  message: string;
}

export const problem = {
  unresolved: (object: string, symbol: string, where: string, objname: string): GeneratorProblem => ({
    code: 'UNRESOLVED_SYMBOL',
    object,
    message: `${object}: ${where} needs ${symbol}, which ${objname} does not have: the patched code must only use symbols of the running kernel (is the vmlinux/module the one the source was built for?)`,
  }),
  ambiguous: (object: string, symbol: string, where: string, objname: string, candidates: string[]): GeneratorProblem => ({
    code: 'AMBIGUOUS_SYMBOL',
    object,
    message: `${object}: ${where} needs ${symbol}, which ${objname} has several times in files of the same name (${candidates.join(', ')}): klpforge can't tell which; rename the static or reach it through a function of its own file`,
  }),
  duplicateGlobal: (first: string, second: string, symbol: string): GeneratorProblem => ({
    code: 'DUPLICATE_GLOBAL',
    object: second,
    message: `${second}: defines global ${symbol}, which ${first} of the same patch defines too; the livepatch links all its objects into one module, where one name has one definition: make one of them static or rename it, or patch the two objects in separate livepatches`,
  }),
  moduleStaticKey: (object: string, what: string, key: string, where: string, objname: string): GeneratorProblem => ({
    code: 'MODULE_STATIC_KEY',
    object,
    message: `${object}: ${where} uses ${what} ${key} of module ${objname}; livepatches can't carry jump labels or static calls keyed in a module: test the key with static_key_enabled() (or call through a plain function pointer) in the patched code`,
  }),
  moduleSpecialRelocation: (object: string, section: string, symbol: string, objname: string): GeneratorProblem => ({
    code: 'MODULE_SPECIAL_RELOCATION',
    object,
    message: `${object}: an entry of ${section} refers to ${symbol} of module ${objname}, which is resolved only when that module loads, after the kernel reads ${section}: keep such code out of the patch`,
  }),
  unpatchable: (object: string, fn: string, why: string): GeneratorProblem => ({
    code: 'UNPATCHABLE_FUNCTION',
    object,
    message: `${object}: ${fn} can't be a patch target: ${why}`,
  }),
};
