/**
 * gcc's naming habits, as one list. Each rule recognises a suffix gcc (or the
 * kernel's macros) add to a name, whether its number is stable between two
 * builds (it never is), and whether the suffixed symbol is a part of another
 * function (a child) or a function of its own (a clone).
 */
export type SuffixKind = 'isra' | 'constprop' | 'part' | 'cold' | 'lto_priv' | 'localalias' | 'llvm' | 'static-local';

interface SuffixRule {
  kind: SuffixKind;
  pattern: RegExp;
  /** A child is code split out of its parent: a change to it is a change to the parent. */
  child: boolean;
  /** What gcc did, for reports. */
  describe: string;
}

const RULES: readonly SuffixRule[] = [
  { kind: 'cold', pattern: /\.cold(?:\.\d+)?$/, child: true, describe: 'cold part split out of its function (.cold)' },
  // A .part clone is a function of its own: gcc gives it an ftrace entry, and other callers may call it.
  { kind: 'part', pattern: /\.part\.\d+$/, child: false, describe: 'partial inlining (.part)' },
  { kind: 'isra', pattern: /\.isra\.\d+$/, child: false, describe: 'IPA-SRA clone (.isra)' },
  { kind: 'constprop', pattern: /\.constprop\.\d+$/, child: false, describe: 'IPA-CP clone (.constprop)' },
  { kind: 'lto_priv', pattern: /\.lto_priv\.\d+$/, child: false, describe: 'LTO private copy (.lto_priv)' },
  { kind: 'localalias', pattern: /\.localalias$/, child: false, describe: 'local alias (.localalias)' },
  { kind: 'llvm', pattern: /\.llvm\.\d+$/, child: false, describe: 'clang ThinLTO promoted local (.llvm)' },
];

/**
 * A name with gcc's unstable numbers removed: `foo.isra.3` → `foo.isra`,
 * `foo.cold.1` → `foo.cold`, `seen.12` → `seen`, `__UNIQUE_ID_ddebug123` → `__UNIQUE_ID_ddebug`.
 * Two builds of the same code give the same canonical names.
 */
export function canonicalName(name: string): string {
  // gcc's `.N` of a function-scope static goes first: `__UNIQUE_ID_ddebug123.4` is the
  // macro's number 123 and gcc's 4, and both change with unrelated edits.
  return name
    .replace(/\.(isra|constprop|part|lto_priv)\.\d+/g, '.$1')
    .replace(/\.llvm\.\d+$/, '.llvm')
    .replace(/\.cold\.\d+$/, '.cold')
    .replace(/^([A-Za-z_][\w$]*)\.\d+$/, '$1')
    .replace(/^(__UNIQUE_ID_.*?)\d+$/, '$1');
}

/** The suffixes of a name, outermost last: `foo.constprop.0.isra.0` → constprop, isra. */
export function suffixesOf(name: string): SuffixRule[] {
  const found: SuffixRule[] = [];
  let rest = name;
  for (let changed = true; changed;) {
    changed = false;
    for (const rule of RULES) {
      const m = rule.pattern.exec(rest);
      if (m) {
        found.unshift(rule);
        rest = rest.slice(0, m.index);
        changed = true;
      }
    }
  }
  return found;
}

/** The parent of a child (`foo.cold` → `foo`, `foo.part.0.cold` → `foo.part.0`), or undefined for anything else. */
export function parentOf(name: string): string | undefined {
  for (const rule of RULES) {
    if (!rule.child) continue;
    const m = rule.pattern.exec(name);
    if (m) return name.slice(0, m.index);
  }
  return undefined;
}

/** A static local variable as gcc names it: `name.N` (not a clone suffix). */
export function isStaticLocalName(name: string): boolean {
  return /^[A-Za-z_][\w$]*\.\d+$/.test(name);
}

/**
 * The assembler's mapping symbols (arm64 `$x` code, `$d` data; arm's `$a`/`$t`; RISC-V's `$x`/`$d`):
 * local NOTYPE markers in every section, no variable or function of their own.
 */
const MAPPING_SYMBOL = /^\$[adtx](\.|$)/;

/** Compiler-generated labels with no stable identity: `.LC12` string labels, `.L` locals, mapping symbols. */
export function isAnonymousLabel(name: string): boolean {
  return name.startsWith('.L') || MAPPING_SYMBOL.test(name);
}

export function describeSuffixes(name: string): string[] {
  return suffixesOf(name).map((r) => r.describe);
}
