import { isEnabled, type KernelConfig } from '../kbuild/kconfig.js';

/**
 * What a kernel's configuration must have, and must not have, for a
 * binary-diff livepatch to be built against it and loaded into it. The rules
 * are data: one row per option (or family of options), with the reason shown
 * to the user. The config describes the *running* kernel, so a problem is
 * fixed by building and booting another kernel, not by editing the file.
 */
export type ConfigRuleKind =
  /** Must be y/m, or no livepatch can be built or loaded: an error. */
  | 'required'
  /** Should be y/m; a livepatch still works without it: a warning. */
  | 'recommended'
  /** Must not be set (any of `options`): an error. */
  | 'forbidden'
  /** Works, but with a known risk or extra step: a warning. */
  | 'discouraged';

export interface ConfigRule {
  kind: ConfigRuleKind;
  /** For required/recommended, the option; for forbidden/discouraged, any of these being y or m triggers the rule. */
  options: readonly string[];
  /** The rule holds only for configs with this option set (a machine's own option: CONFIG_EXPOLINE is s390's). */
  onlyIf?: string;
  reason: string;
}

export type ConfigProblemCode =
  'CONFIG_REQUIRED_MISSING' | 'CONFIG_RECOMMENDED_MISSING' | 'CONFIG_FORBIDDEN_SET' | 'CONFIG_DISCOURAGED_SET';

export interface ConfigProblem {
  code: ConfigProblemCode;
  /** The option as it appears in .config, e.g. `CONFIG_KALLSYMS_ALL`. */
  option: string;
  severity: 'error' | 'warning';
  /** One line: what is wrong, why it matters, what to do. */
  message: string;
}

export const CONFIG_RULES: readonly ConfigRule[] = [
  { kind: 'required', options: ['CONFIG_MODULES'], reason: 'a livepatch is a kernel module' },
  {
    kind: 'required',
    options: ['CONFIG_LIVEPATCH'],
    reason: 'the livepatch core (klp_enable_patch) is what registers the patch and switches tasks to the new functions',
  },
  {
    kind: 'required',
    options: ['CONFIG_FUNCTION_TRACER'],
    reason: "livepatch redirects calls through the ftrace hook the compiler puts at every function's entry",
  },
  {
    kind: 'required',
    options: ['CONFIG_DYNAMIC_FTRACE'],
    reason:
      "ftrace must be able to turn on the entry hook of single functions at run time, which is how a patched function's callers are redirected",
  },
  {
    kind: 'required',
    options: ['CONFIG_KALLSYMS_ALL'],
    reason:
      'the livepatch core finds the non-exported functions and data the new code uses by name in kallsyms; without _ALL kallsyms has no data symbols',
  },
  {
    kind: 'required',
    options: ['CONFIG_EXPOLINE_EXTERN'],
    onlyIf: 'CONFIG_EXPOLINE',
    reason:
      "s390x expolines must be extern functions (the kernel's help for the option says tools like kpatch need it): without it every object carries its own copies of the thunks, and new code branching to vmlinux's copies from a module more than 4 GiB away cannot be relocated",
  },
  {
    kind: 'recommended',
    options: ['CONFIG_MODULE_UNLOAD'],
    reason: 'without it a disabled livepatch module can never be removed, so replaced patches stay loaded until reboot',
  },
  {
    kind: 'forbidden',
    options: ['CONFIG_GCC_PLUGIN_RANDSTRUCT', 'CONFIG_RANDSTRUCT_FULL', 'CONFIG_RANDSTRUCT_PERFORMANCE'],
    reason:
      'structure layouts are shuffled with a seed made afresh for each build, so objects compiled here would lay out structs differently from the running kernel',
  },
  {
    kind: 'forbidden',
    options: ['CONFIG_GCC_PLUGIN_LATENT_ENTROPY'],
    reason:
      'the plugin mixes random per-build constants into instrumented functions, so they differ between any two builds and the patch cannot be told apart from that noise',
  },
  {
    kind: 'forbidden',
    options: ['CONFIG_LD_DEAD_CODE_DATA_ELIMINATION'],
    reason:
      'the linker drops functions and data nothing references (--gc-sections), so the running kernel may lack code and data that the compiled objects have and the patch would call',
  },
  {
    kind: 'forbidden',
    options: ['CONFIG_LTO_CLANG', 'CONFIG_LTO_CLANG_FULL', 'CONFIG_LTO_CLANG_THIN'],
    reason:
      'clang LTO is not supported: objects are LLVM bitcode and machine code is only made at link time across files, so there are no per-file objects to compare',
  },
  {
    kind: 'discouraged',
    options: ['CONFIG_CC_IS_CLANG'],
    reason: "clang-built kernels are experimental: the differ's knowledge of what the compiler does to code is built and tested on gcc",
  },
  {
    kind: 'discouraged',
    options: ['CONFIG_DEBUG_INFO_SPLIT'],
    reason:
      "split DWARF keeps each object's debug info in a .dwo file beside it; kpatch-build refuses it and klpforge is not tested with it",
  },
  {
    kind: 'discouraged',
    options: ['CONFIG_DEBUG_INFO_BTF'],
    reason:
      'linking the original kernel runs pahole for BTF, which some pahole versions fail on the -ffunction-sections objects klpforge builds (kpatch-build disables BTF for this)',
  },
  {
    kind: 'discouraged',
    options: ['CONFIG_MODULE_SIG_FORCE'],
    reason: "the kernel loads only signed modules: sign the livepatch module with the kernel's key (scripts/sign-file) before loading it",
  },
];

/** Every rule the config breaks, errors first, in table order within each severity. */
export function checkKernelConfig(config: KernelConfig, rules: readonly ConfigRule[] = CONFIG_RULES): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const rule of rules) {
    if (rule.onlyIf !== undefined && !isEnabled(config, rule.onlyIf)) continue;
    if (rule.kind === 'required' || rule.kind === 'recommended') {
      const option = rule.options[0]!;
      if (isEnabled(config, option)) continue;
      const required = rule.kind === 'required';
      problems.push({
        code: required ? 'CONFIG_REQUIRED_MISSING' : 'CONFIG_RECOMMENDED_MISSING',
        option,
        severity: required ? 'error' : 'warning',
        message: required
          ? `${config.file}: ${option} is not set, and a livepatch needs it: ${rule.reason}; only a kernel built and booted with ${option}=y can be livepatched`
          : `${config.file}: ${option} is not set: ${rule.reason}`,
      });
    } else {
      const option = rule.options.find((o) => isEnabled(config, o));
      if (option === undefined) continue;
      const forbidden = rule.kind === 'forbidden';
      problems.push({
        code: forbidden ? 'CONFIG_FORBIDDEN_SET' : 'CONFIG_DISCOURAGED_SET',
        option,
        severity: forbidden ? 'error' : 'warning',
        message: forbidden
          ? `${config.file}: ${option} is set, and binary-diff livepatching cannot work with it: ${rule.reason}`
          : `${config.file}: ${option} is set: ${rule.reason}`,
      });
    }
  }
  return [...problems.filter((p) => p.severity === 'error'), ...problems.filter((p) => p.severity === 'warning')];
}
