import { type ElfObject, SHN, STT } from '../elf/index.js';

/**
 * Where a symbol sits among the same-named ones, as the livepatch core counts
 * them (`klp_find_object_symbol`: the 1-based position in kallsyms order;
 * 0 for a unique name). kallsyms lists vmlinux by address and a module in its
 * symbol table's order. A local is told from its namesakes by the file-scope
 * block it belongs to (the STT_FILE symbol before it in the symbol table);
 * when several blocks have that file name (two `core.c`), by the other locals
 * of the block: the patched object's neighbours, as kpatch does.
 */
export type SymposResult =
  | { found: true; sympos: number; address: bigint }
  | { found: false; reason: 'missing' | 'not-in-file' | 'ambiguous'; candidates: string[] };

interface Entry {
  address: bigint;
  file: string;
  order: number;
  block: number;
}

/** A file-scope block of the symbol table: the STT_FILE symbol at `start`, its locals up to `end`. */
interface Block {
  start: number;
  end: number;
  locals?: Set<string>;
}

export class KallsymsIndex {
  private byName = new Map<string, Entry[]>();
  private blocks: Block[] = [];
  private readonly symbols: ElfObject['symbols'];

  /** `kind` decides the order the kernel counts in: by address for vmlinux, by table position for a module. */
  constructor(obj: ElfObject, kind: 'vmlinux' | 'module') {
    this.symbols = obj.symbols;
    let file = '';
    this.symbols.forEach((s, i) => {
      if (s.type === STT.FILE) {
        file = s.name;
        const last = this.blocks[this.blocks.length - 1];
        if (last) last.end = i;
        this.blocks.push({ start: i, end: this.symbols.length });
        return;
      }
      if (i === 0 || s.name === '' || s.type === STT.SECTION || (s.shndx === SHN.UNDEF && s.reserved === 0)) return;
      const list = this.byName.get(s.name) ?? [];
      list.push({ address: s.value, file: s.bind === 0 ? file : '', order: i, block: s.bind === 0 ? this.blocks.length - 1 : -1 });
      this.byName.set(s.name, list);
    });
    if (kind === 'vmlinux') {
      for (const list of this.byName.values())
        list.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.order - b.order));
    }
  }

  /**
   * Every symbol called `name`, in the order the livepatch core counts them
   * (position k is sympos k + 1): its symbol-table index, address and file.
   */
  occurrences(name: string): ReadonlyArray<{ order: number; address: bigint; file: string }> {
    return this.byName.get(name) ?? [];
  }

  /** Every name in the table: for the clones of a name (`NAME.isra.0`), looked for only when NAME is missing. */
  names(): IterableIterator<string> {
    return this.byName.keys();
  }

  /**
   * The sympos of `name`; `file` (the source file's name, e.g. `printk.c`)
   * picks among same-named locals, and `neighbours` (the other local
   * functions and objects of the patched object) among blocks of that file name.
   */
  sympos(name: string, file?: string, neighbours?: readonly string[]): SymposResult {
    const list = this.byName.get(name);
    if (!list || list.length === 0) return { found: false, reason: 'missing', candidates: [] };
    if (list.length === 1) return { found: true, sympos: 0, address: list[0]!.address };
    const describe = () => list.map((e) => `${e.file || '(global)'}@0x${e.address.toString(16)}`);
    if (file === undefined) return { found: false, reason: 'ambiguous', candidates: describe() };
    let matches = list.map((e, k) => ({ e, k })).filter(({ e }) => e.file === file);
    if (matches.length === 0) return { found: false, reason: 'not-in-file', candidates: describe() };
    if (matches.length > 1 && neighbours && neighbours.length > 0) matches = this.byNeighbours(matches, neighbours);
    if (matches.length > 1) return { found: false, reason: 'ambiguous', candidates: describe() };
    return { found: true, sympos: matches[0]!.k + 1, address: matches[0]!.e.address };
  }

  /**
   * The one candidate whose block holds the most of the neighbours, if it
   * holds strictly more than any other and at least half of them (the running
   * kernel need not have been built with function sections, which can change
   * a few locals); else all of them, still ambiguous.
   */
  private byNeighbours<T extends { e: Entry }>(matches: T[], neighbours: readonly string[]): T[] {
    const scored = matches
      .map((m) => {
        const locals = this.blockLocals(m.e.block);
        return { m, score: neighbours.reduce((n, name) => n + (locals.has(name) ? 1 : 0), 0) };
      })
      .sort((a, b) => b.score - a.score);
    const [best, next] = scored;
    if (best && best.score * 2 >= neighbours.length && (next === undefined || best.score > next.score)) return [best.m];
    return matches;
  }

  private blockLocals(b: number): Set<string> {
    const block = this.blocks[b];
    if (block === undefined) return new Set();
    if (block.locals === undefined) {
      block.locals = new Set();
      for (let i = block.start + 1; i < block.end; i++) {
        const s = this.symbols[i]!;
        if (s.bind === 0 && s.name !== '' && s.type !== STT.SECTION) block.locals.add(s.name);
      }
    }
    return block.locals;
  }
}
