/**
 * Why a change cannot be livepatched safely, as values: a stable code, the
 * section/symbol it concerns, and a message for the patch author that ends
 * with the way out.
 */
export type RefusalCode =
  | 'DATA_CHANGED'
  | 'RODATA_CHANGED'
  | 'INIT_CHANGED'
  | 'NO_FENTRY'
  | 'STATIC_LOCAL_UNMATCHED'
  | 'UNUSED_CHANGED_SECTION'
  | 'UNSUPPORTED_ARCH';

export interface Refusal {
  code: RefusalCode;
  section?: string;
  symbol?: string;
  message: string;
}

export const refuse = {
  dataChanged: (symbol: string, section: string, what: string): Refusal => ({
    code: 'DATA_CHANGED',
    symbol,
    section,
    message:
      `data ${symbol} in ${section} changed (${what}): a livepatch cannot change data the running kernel already holds; ` +
      'keep the old definition and attach new state with a shadow variable (klp_shadow_get_or_alloc), or update it from a post-patch callback',
  }),
  rodataChanged: (symbol: string, section: string, what: string): Refusal => ({
    code: 'RODATA_CHANGED',
    symbol,
    section,
    message:
      `read-only table ${symbol} in ${section} changed (${what}): the running kernel keeps using the old one; ` +
      'add a new table under a new name and use it from the patched functions',
  }),
  initChanged: (symbol: string, section: string): Refusal => ({
    code: 'INIT_CHANGED',
    symbol,
    section,
    message:
      `__init/__exit function ${symbol} in ${section} changed: it ran at boot (or runs at unload) and its code is gone from memory; ` +
      'leave it out of the patch, or mark it KPATCH_IGNORE_FUNCTION if the change does not matter after boot',
  }),
  /** `entry`: what the architecture's ftrace entry is (arch.ts), e.g. `__fentry__ call`. */
  noFentry: (symbol: string, section: string, entry: string, cause: string, callers: readonly string[]): Refusal => ({
    code: 'NO_FENTRY',
    symbol,
    section,
    message:
      `${symbol} in ${section} changed but has no ${entry} (${cause}), so ftrace cannot redirect it; ` +
      (callers.length > 0
        ? `patch its callers (${callers.join(', ')}) instead, e.g. by making it a non-inline helper they call, `
        : 'patch its callers instead, ') +
      'or KPATCH_FORCE_UNSAFE it if you have proved that safe',
  }),
  staticLocalUnmatched: (symbol: string, side: string): Refusal => ({
    code: 'STATIC_LOCAL_UNMATCHED',
    symbol,
    message:
      `static local ${symbol} (${side} build) cannot be matched to its twin: no function present in both builds references it alone; ` +
      'give it a distinct name or reference it from the same function in both versions',
  }),
  unusedChangedSection: (section: string): Refusal => ({
    code: 'UNUSED_CHANGED_SECTION',
    section,
    message:
      `section ${section} changed but no patched function uses it, so the change would be lost; ` +
      'make the change through a function, or KPATCH_IGNORE_SECTION it if it does not matter',
  }),
  unsupportedArch: (machine: string, supported: readonly string[]): Refusal => ({
    code: 'UNSUPPORTED_ARCH',
    message: `objects for ${machine} can be read but not yet diffed (${supported.join(', ')} only): the differ's per-architecture rules are missing`,
  }),
};
