import { type ElfObject, SHN, STT } from '../elf/index.js';

/**
 * Where a symbol sits among the same-named ones, as the livepatch core counts
 * them (`klp_find_object_symbol`: the 1-based position in kallsyms order;
 * 0 for a unique name). kallsyms lists vmlinux by address and a module in its
 * symbol table's order. A local is told from its namesakes by the file-scope
 * block it belongs to (the STT_FILE symbol before it in the symbol table).
 */
export type SymposResult =
  | { found: true; sympos: number; address: bigint }
  | { found: false; reason: 'missing' | 'not-in-file' | 'ambiguous'; candidates: string[] };

interface Entry { address: bigint; file: string; order: number }

export class KallsymsIndex {
  private byName = new Map<string, Entry[]>();

  /** `kind` decides the order the kernel counts in: by address for vmlinux, by table position for a module. */
  constructor(obj: ElfObject, kind: 'vmlinux' | 'module') {
    let file = '';
    obj.symbols.forEach((s, i) => {
      if (s.type === STT.FILE) { file = s.name; return; }
      if (i === 0 || s.name === '' || s.type === STT.SECTION || s.shndx === SHN.UNDEF && s.reserved === 0) return;
      const list = this.byName.get(s.name) ?? [];
      list.push({ address: s.value, file: s.bind === 0 ? file : '', order: i });
      this.byName.set(s.name, list);
    });
    if (kind === 'vmlinux') {
      for (const list of this.byName.values()) list.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.order - b.order));
    }
  }

  /** The sympos of `name`; `file` (the source file's name, e.g. `printk.c`) picks among same-named locals. */
  sympos(name: string, file?: string): SymposResult {
    const list = this.byName.get(name);
    if (!list || list.length === 0) return { found: false, reason: 'missing', candidates: [] };
    if (list.length === 1) return { found: true, sympos: 0, address: list[0]!.address };
    const describe = () => list.map((e) => `${e.file || '(global)'}@0x${e.address.toString(16)}`);
    if (file === undefined) return { found: false, reason: 'ambiguous', candidates: describe() };
    const matches = list.map((e, k) => ({ e, k })).filter(({ e }) => e.file === file);
    if (matches.length === 0) return { found: false, reason: 'not-in-file', candidates: describe() };
    if (matches.length > 1) return { found: false, reason: 'ambiguous', candidates: describe() };
    return { found: true, sympos: matches[0]!.k + 1, address: matches[0]!.e.address };
  }
}
