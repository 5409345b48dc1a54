import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BatchError } from './errors.js';

/**
 * A batch manifest: the kernels a distribution still supports and the patch
 * sets to build for each. Paths in it are relative to the manifest's own
 * directory, so a manifest and its patches move together (a git checkout on a
 * CI worker). JSON always; YAML when the file is named .yaml/.yml.
 */

/** A kernel built by hand: its tree, its .config and its vmlinux (as `build -s -c -v`). */
export interface BuiltKernel {
  readonly kind: 'built';
  readonly name: string;
  readonly source: string;
  readonly config: string;
  readonly vmlinux: string;
  /** bzImage for --verify (default: next to the vmlinux, as `build --verify`). */
  readonly image?: string;
  readonly original?: 'lazy' | 'full';
}

/** A distribution kernel klpforge fetches itself: `debian:6.1.0-57-amd64`. */
export interface DistroKernel {
  readonly kind: 'distro';
  readonly name: string;
  readonly kernel: string;
}

export type ManifestKernel = BuiltKernel | DistroKernel;

/** One check of `klpforge verify`: a shell test given inline or as a file (its whole text). */
export interface ManifestCheck {
  readonly text: string;
  readonly label: string;
}

export interface PatchSet {
  readonly name: string;
  /** Absolute paths, applied in order and combined into one module. */
  readonly patches: readonly string[];
  readonly checks: readonly ManifestCheck[];
}

export interface Manifest {
  readonly file: string;
  readonly kernels: readonly ManifestKernel[];
  readonly patchsets: readonly PatchSet[];
}

/** Names become directories and module names: kept to what both allow. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

type Json = Record<string, unknown>;

/** Reads, parses and checks a manifest; every problem is one line naming the entry. */
export async function readManifest(file: string): Promise<Manifest> {
  const abs = path.resolve(file);
  const text = await readFile(abs, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new BatchError('BATCH_MANIFEST', `${file}: cannot read the manifest (${e.code ?? e.message})`);
  });
  const manifest = checkManifest(abs, await parse(abs, text));
  // Check files are read now: a missing one is said before hours of building, not after.
  const patchsets = await Promise.all(
    manifest.patchsets.map(async (p) => ({
      ...p,
      checks: await Promise.all(
        p.checks.map(async (c) =>
          c.text !== ''
            ? c
            : {
                label: c.label,
                text: await readFile(c.label, 'utf8').catch((e: NodeJS.ErrnoException) => {
                  throw new BatchError('BATCH_MANIFEST', `${abs}: patch set ${p.name}: check file ${c.label}: ${e.code ?? e.message}`);
                }),
              },
        ),
      ),
    })),
  );
  return { ...manifest, patchsets };
}

async function parse(file: string, text: string): Promise<unknown> {
  try {
    if (/\.ya?ml$/i.test(file)) {
      // Loaded only for YAML manifests: JSON ones never pay for the parser.
      const { parse: parseYaml } = await import('yaml');
      return parseYaml(text) as unknown;
    }
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new BatchError('BATCH_MANIFEST', `${file}: not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
}

/** The checks of the parsed document; exported for tests of the rules alone. */
export function checkManifest(file: string, data: unknown): Manifest {
  const dir = path.dirname(file);
  const fail = (where: string, what: string): never => {
    throw new BatchError('BATCH_MANIFEST', `${file}: ${where}: ${what}`);
  };
  if (!isObject(data)) return fail('top level', 'expected an object with "kernels" and "patchsets"');
  for (const key of Object.keys(data)) if (key !== 'kernels' && key !== 'patchsets') fail(key, 'unknown key (expected kernels, patchsets)');
  const kernels = listOf(data, 'kernels', fail).map((k, i) => kernelEntry(k, `kernels[${i}]`, dir, fail));
  const patchsets = listOf(data, 'patchsets', fail).map((p, i) => patchSetEntry(p, `patchsets[${i}]`, dir, fail));
  unique(kernels, 'kernels', fail);
  unique(patchsets, 'patchsets', fail);
  return { file, kernels, patchsets };
}

type Fail = (where: string, what: string) => never;

function listOf(data: Json, key: string, fail: Fail): unknown[] {
  const v = data[key];
  if (!Array.isArray(v) || v.length === 0) return fail(key, 'expected a non-empty list');
  return v as unknown[];
}

function kernelEntry(k: unknown, where: string, dir: string, fail: Fail): ManifestKernel {
  if (!isObject(k)) return fail(where, 'expected an object');
  const name = nameOf(k, where, fail);
  const at = `${where} (${name})`;
  if (k.kernel !== undefined) {
    allowKeys(k, ['name', 'kernel'], at, fail);
    const kernel = str(k, 'kernel', at, fail);
    if (!/^debian:\S+$/.test(kernel)) fail(at, `kernel "${kernel}": expected debian:RELEASE (e.g. debian:6.1.0-57-amd64)`);
    return { kind: 'distro', name, kernel };
  }
  allowKeys(k, ['name', 'source', 'config', 'vmlinux', 'image', 'original'], at, fail);
  const original = k.original;
  if (original !== undefined && original !== 'lazy' && original !== 'full') fail(at, 'original: expected "lazy" or "full"');
  return {
    kind: 'built',
    name,
    source: path.resolve(dir, str(k, 'source', at, fail)),
    config: path.resolve(dir, str(k, 'config', at, fail)),
    vmlinux: path.resolve(dir, str(k, 'vmlinux', at, fail)),
    ...(k.image !== undefined ? { image: path.resolve(dir, str(k, 'image', at, fail)) } : {}),
    ...(original !== undefined ? { original: original } : {}),
  };
}

function patchSetEntry(p: unknown, where: string, dir: string, fail: Fail): PatchSet {
  if (!isObject(p)) return fail(where, 'expected an object');
  const name = nameOf(p, where, fail);
  const at = `${where} (${name})`;
  allowKeys(p, ['name', 'patches', 'checks'], at, fail);
  const patches = p.patches;
  if (!Array.isArray(patches) || patches.length === 0 || !patches.every((x) => typeof x === 'string' && x !== ''))
    return fail(at, 'patches: expected a non-empty list of patch files');
  const checks = p.checks ?? [];
  if (!Array.isArray(checks)) return fail(at, 'checks: expected a list');
  return {
    name,
    patches: (patches as string[]).map((f) => path.resolve(dir, f)),
    checks: (checks as unknown[]).map((c, i) => checkEntry(c, `${at} checks[${i}]`, dir, fail)),
  };
}

/** A string is a shell test; `{"file": F}` is a file whose text is one (read when the batch starts). */
function checkEntry(c: unknown, where: string, dir: string, fail: Fail): ManifestCheck {
  if (typeof c === 'string' && c.trim() !== '') return { text: c, label: c };
  if (isObject(c) && typeof c.file === 'string' && Object.keys(c).length === 1) return { text: '', label: path.resolve(dir, c.file) };
  return fail(where, 'expected a shell test (a string) or {"file": PATH}');
}

function nameOf(o: Json, where: string, fail: Fail): string {
  const name = o.name;
  if (typeof name !== 'string' || !NAME.test(name))
    return fail(
      where,
      `name ${JSON.stringify(name)}: expected letters, digits, '.', '_' or '-' (at most 64, not starting with '.' or '-')`,
    );
  return name;
}

function str(o: Json, key: string, where: string, fail: Fail): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') return fail(where, `${key}: expected a path`);
  return v;
}

function allowKeys(o: Json, keys: readonly string[], where: string, fail: Fail): void {
  for (const key of Object.keys(o)) if (!keys.includes(key)) fail(where, `unknown key "${key}" (expected ${keys.join(', ')})`);
}

function unique(entries: ReadonlyArray<{ name: string }>, list: string, fail: Fail): void {
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name)) fail(list, `the name "${e.name}" is used twice`);
    seen.add(e.name);
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
