/**
 * Module.symvers: what the kernel exports, and who exports it. A reference to
 * an exported symbol links normally (modpost records the dependency); anything
 * else the livepatch takes from the kernel needs a klp relocation.
 */
export interface Export {
  /** `vmlinux` or the exporting module's path without `.ko` (as modpost writes it). */
  owner: string;
  kind: string;
  namespace: string;
}

export type Exports = ReadonlyMap<string, Export>;

/** Parses `CRC<TAB>name<TAB>owner<TAB>EXPORT_SYMBOL[_GPL]<TAB>namespace` lines. */
export function parseSymvers(text: string): Map<string, Export> {
  const out = new Map<string, Export>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [, name, owner, kind, namespace] = line.split('\t');
    if (name === undefined || owner === undefined) continue;
    out.set(name, { owner, kind: kind ?? 'EXPORT_SYMBOL', namespace: namespace ?? '' });
  }
  return out;
}

/** The klp object name of a module path as modpost writes it (`fs/binfmt_misc` → `binfmt_misc`). */
export function moduleNameOfPath(modulePath: string): string {
  const base = modulePath.slice(modulePath.lastIndexOf('/') + 1).replace(/\.ko$/, '');
  return base.replace(/-/g, '_');
}
