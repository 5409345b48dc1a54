import { readFile } from 'node:fs/promises';
import { SetupError } from '../setup-errors.js';

/**
 * A kernel .config as kconfig writes it:
 *
 *     CONFIG_LIVEPATCH=y
 *     CONFIG_SAMPLE=m
 *     CONFIG_LOCALVERSION="-klp"
 *     CONFIG_NR_CPUS=64
 *     # CONFIG_LTO_CLANG is not set
 *
 * Parsing is strict on purpose: the usual wrong inputs (a patch, a Makefile,
 * a bzImage, a config fragment with typos) must be refused with the line that
 * gave them away, not read as an empty config that then "lacks LIVEPATCH".
 */
export interface KernelConfig {
  /** Where it was read from (for messages). */
  file: string;
  /**
   * Option name with its CONFIG_ prefix → value as written: `y`, `m`, `n` (also
   * for "is not set"), a number, or a string with its quotes (`"-klp"`, so a
   * string "n" is not the tristate n; see configString). Later lines win, as in kconfig.
   */
  options: Map<string, string>;
}

const ASSIGNMENT = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const NOT_SET = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;
const PLAIN_VALUE = /^(?:[ymn]|-?\d+|0[xX][0-9a-fA-F]+)$/;
const STRING_VALUE = /^"((?:[^"\\]|\\.)*)"$/;

export function parseKernelConfig(text: string, file = '.config'): KernelConfig {
  const notAConfig = (why: string): SetupError =>
    new SetupError(
      'CONFIG_NOT_A_CONFIG',
      `${file}: not a kernel .config (${why}): pass the .config of the kernel being patched (e.g. /boot/config-$(uname -r))`,
    );
  if (text.includes('\0')) throw notAConfig('binary data');

  const options = new Map<string, string>();
  const lines = text.split('\n');
  lines.forEach((rawLine, i) => {
    const line = rawLine.replace(/\r$/, '').trim();
    if (line === '') return;
    const unset = NOT_SET.exec(line);
    if (unset) {
      options.set(unset[1]!, 'n');
      return;
    }
    if (line.startsWith('#')) return;
    const m = ASSIGNMENT.exec(line);
    const value = m?.[2];
    if (m === null || value === undefined) throw notAConfig(`line ${i + 1} is not CONFIG_NAME=value: ${JSON.stringify(truncate(line))}`);
    if (PLAIN_VALUE.test(value)) {
      options.set(m[1]!, value);
      return;
    }
    if (!STRING_VALUE.test(value)) throw notAConfig(`line ${i + 1} has a value kconfig never writes: ${JSON.stringify(truncate(line))}`);
    options.set(m[1]!, value);
  });
  if (options.size === 0) throw notAConfig('no CONFIG_ lines');
  return { file, options };
}

export async function readKernelConfig(file: string): Promise<KernelConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') {
      throw new SetupError(
        'CONFIG_NOT_A_CONFIG',
        `${file}: is a directory: pass the .config file itself (e.g. ${file.replace(/\/+$/, '')}/.config)`,
      );
    }
    throw new SetupError(
      'CONFIG_NOT_FOUND',
      `${file}: cannot read the kernel config (${code ?? String(e)}): pass an existing .config with -c/--config`,
    );
  }
  return parseKernelConfig(text, file);
}

/** A string option's value, unquoted; undefined when absent or not a string. */
export function configString(config: KernelConfig, option: string): string | undefined {
  const s = STRING_VALUE.exec(config.options.get(option) ?? '');
  return s === null ? undefined : s[1]!.replace(/\\(.)/g, '$1');
}

/** `y` or `m`. */
export function isEnabled(config: KernelConfig, option: string): boolean {
  const v = config.options.get(option);
  return v === 'y' || v === 'm';
}

/**
 * The config's meaning as one canonical text: the options that are set, sorted,
 * one `NAME=value` a line. Comments, order and "is not set" lines (which mean
 * the same as absence) do not change it, so the cache key does not either.
 */
export function canonicalConfig(config: KernelConfig): string {
  return [...config.options]
    .filter(([, v]) => v !== 'n')
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join('\n');
}

/** Options whose value differs between two configs (absent and `n` are the same): what olddefconfig changed. */
export function configDifferences(before: KernelConfig, after: KernelConfig): Array<{ option: string; before: string; after: string }> {
  const names = new Set([...before.options.keys(), ...after.options.keys()]);
  const value = (c: KernelConfig, k: string): string => c.options.get(k) ?? 'n';
  return [...names]
    .filter((k) => value(before, k) !== value(after, k))
    .sort()
    .map((option) => ({ option, before: value(before, option), after: value(after, option) }));
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
