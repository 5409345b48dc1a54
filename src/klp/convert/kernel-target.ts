import { type ElfObject, SHF, STB, STT } from '../../elf/index.js';
import { suffixesOf } from '../../diff/model/names.js';
import { KallsymsIndex } from '../sympos.js';

/**
 * One object of the running kernel (vmlinux, or a module) as `convert` asks
 * it: which symbols of a name there are (in the livepatch core's order), the
 * clones gcc made of a function, whether a function has an ftrace entry, and
 * which functions of its own file call it.
 */
export interface Occurrence {
  /** 1-based sympos of this occurrence. */
  sympos: number;
  /** Symbol-table index. */
  order: number;
  address: bigint;
  file: string;
}

const ENDBR64_BYTES = 4n;

export class KernelTarget {
  readonly index: KallsymsIndex;
  private clones: Map<string, string[]> | undefined;
  private mcount: Set<string> | undefined;
  private byAddress: number[] | undefined;
  private fileStarts: Map<number, bigint[]> | undefined;

  constructor(
    readonly objname: string,
    readonly elf: ElfObject,
    readonly kind: 'vmlinux' | 'module',
  ) {
    this.index = new KallsymsIndex(elf, kind);
  }

  occurrences(name: string): Occurrence[] {
    return this.index.occurrences(name).map((o, k) => ({ sympos: k + 1, order: o.order, address: o.address, file: o.file }));
  }

  /** What the candidates are called in messages: `fs/proc/meminfo.c@0xffffffff81234560 (sympos 2)`. */
  describe(name: string): string[] {
    return this.occurrences(name).map((o) => `${o.file || '(global)'} at 0x${o.address.toString(16)} (sympos ${o.sympos})`);
  }

  /** gcc's clones of a function (`NAME.isra.0`, `NAME.constprop.1`, `NAME.part.0`), not its cold parts. */
  clonesOf(name: string): string[] {
    if (this.clones === undefined) {
      this.clones = new Map();
      for (const n of this.index.names()) {
        const suffixes = suffixesOf(n);
        if (suffixes.length === 0 || suffixes.some((s) => s.child)) continue;
        const base = n.slice(0, n.indexOf('.'));
        const list = this.clones.get(base) ?? [];
        list.push(n);
        this.clones.set(base, list);
      }
    }
    return this.clones.get(name) ?? [];
  }

  /**
   * Whether the function at this occurrence has an ftrace entry: its call
   * site is in `__mcount_loc`, at the start or after an `endbr64`. Undefined
   * when the object has no `__mcount_loc` to tell.
   */
  hasFtraceEntry(o: Occurrence): boolean | undefined {
    const sites = this.mcountSites();
    if (sites === undefined) return undefined;
    const sym = this.elf.symbol(o.order as never);
    const at = (offset: bigint) => (this.kind === 'vmlinux' ? `${o.address + offset}` : `${sym.shndx}:${sym.value + offset}`);
    return sites.has(at(0n)) || sites.has(at(ENDBR64_BYTES));
  }

  /**
   * The functions of the same file that call or jump to this one (x86: `e8`
   * and `e9` with a 32-bit displacement landing on it), found in the linked
   * vmlinux's bytes. gcc's IPA-RA lets such callers rely on which registers
   * the callee leaves untouched: a replacement that clobbers more breaks them.
   * The file's code runs from its first local function to the next file's
   * (the linker moves its globals out of its STT_FILE block, but not out of
   * its code, which is contiguous in a kernel built without function sections). Modules are left out: their calls are relocations, not bytes.
   */
  sameFileCallers(o: Occurrence): string[] | undefined {
    if (this.kind !== 'vmlinux' || this.elf.ident.machine !== 62) return undefined;
    const symbols = this.elf.symbols;
    const self = symbols[o.order]!;
    let first = o.order;
    while (first > 0 && symbols[first - 1]!.type !== STT.FILE) first--;
    const sec = this.elf.section(self.shndx);
    if (sec.body.kind !== 'bytes' || (sec.flags & SHF.EXECINSTR) === 0n) return [];
    const data = sec.body.data;
    const lo = this.fileStart(first, self.shndx) ?? self.value;
    const hi = this.nextFileStart(self.shndx, lo) ?? sec.addr + BigInt(data.length);
    const callers: string[] = [];
    for (const i of this.functionsBetween(self.shndx, lo, hi)) {
      const s = symbols[i]!;
      if (i === o.order) continue;
      const start = Number(s.value - sec.addr);
      const end = Math.min(data.length, start + Number(s.size));
      for (let p = start; p + 5 <= end; p++) {
        const op = data[p];
        if (op !== 0xe8 && op !== 0xe9) continue;
        if (sec.addr + BigInt(p + 5) + BigInt(data.readInt32LE(p + 1)) === o.address) {
          callers.push(s.name);
          break;
        }
      }
    }
    return callers;
  }

  /** The lowest address of a local function of the STT_FILE block starting at `first`, in section `shndx`. */
  private fileStart(first: number, shndx: number): bigint | undefined {
    const symbols = this.elf.symbols;
    let lo: bigint | undefined;
    for (let i = first; i < symbols.length && symbols[i]!.type !== STT.FILE && symbols[i]!.bind === STB.LOCAL; i++) {
      const s = symbols[i]!;
      if (s.type === STT.FUNC && s.shndx === shndx && (lo === undefined || s.value < lo)) lo = s.value;
    }
    return lo;
  }

  /** Where the next file's code starts after `lo` in the section (undefined: no file follows). */
  private nextFileStart(shndx: number, lo: bigint): bigint | undefined {
    if (this.fileStarts === undefined) {
      this.fileStarts = new Map();
      const symbols = this.elf.symbols;
      symbols.forEach((s, i) => {
        if (s.type !== STT.FILE) return;
        for (const [sec, start] of this.fileStartsOf(i + 1)) {
          const list = this.fileStarts!.get(sec) ?? [];
          list.push(start);
          this.fileStarts!.set(sec, list);
        }
      });
      for (const list of this.fileStarts.values()) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
    return (this.fileStarts.get(shndx) ?? []).find((start) => start > lo);
  }

  /** Each section's lowest local function address in the block from `first`. */
  private fileStartsOf(first: number): Map<number, bigint> {
    const starts = new Map<number, bigint>();
    const symbols = this.elf.symbols;
    for (let i = first; i < symbols.length && symbols[i]!.type !== STT.FILE && symbols[i]!.bind === STB.LOCAL; i++) {
      const s = symbols[i]!;
      if (s.type !== STT.FUNC || s.shndx === 0) continue;
      const seen = starts.get(s.shndx);
      if (seen === undefined || s.value < seen) starts.set(s.shndx, s.value);
    }
    return starts;
  }

  /** Function symbols of a section whose start is in [lo, hi), by a binary search of the functions sorted by address. */
  private functionsBetween(shndx: number, lo: bigint, hi: bigint): number[] {
    if (this.byAddress === undefined) {
      this.byAddress = [];
      this.elf.symbols.forEach((s, i) => {
        if (s.type === STT.FUNC && s.size > 0n && s.shndx !== 0) this.byAddress!.push(i);
      });
      const sym = this.elf.symbols;
      this.byAddress.sort((a, b) => (sym[a]!.value < sym[b]!.value ? -1 : sym[a]!.value > sym[b]!.value ? 1 : a - b));
    }
    const list = this.byAddress;
    const sym = this.elf.symbols;
    let left = 0;
    let right = list.length;
    while (left < right) {
      const mid = (left + right) >> 1;
      if (sym[list[mid]!]!.value < lo) left = mid + 1;
      else right = mid;
    }
    const found: number[] = [];
    for (let k = left; k < list.length && sym[list[k]!]!.value < hi; k++) if (sym[list[k]!]!.shndx === shndx) found.push(list[k]!);
    return found;
  }

  private mcountSites(): Set<string> | undefined {
    if (this.mcount !== undefined) return this.mcount;
    const sites = this.kind === 'vmlinux' ? this.vmlinuxMcount() : this.moduleMcount();
    if (sites !== undefined) this.mcount = sites;
    return sites;
  }

  /** vmlinux's linker script puts the call sites between __start_mcount_loc and __stop_mcount_loc, inside .init.data. */
  private vmlinuxMcount(): Set<string> | undefined {
    const bound = (name: string) => this.elf.symbolsNamed(name).map((i) => this.elf.symbol(i).value)[0];
    const start = bound('__start_mcount_loc');
    const stop = bound('__stop_mcount_loc');
    if (start === undefined || stop === undefined) return undefined;
    const sec = this.elf.sections.find(
      (s) => (s.flags & SHF.ALLOC) !== 0n && s.body.kind === 'bytes' && s.addr <= start && stop <= s.addr + BigInt(s.body.data.length),
    );
    if (sec === undefined || sec.body.kind !== 'bytes') return undefined;
    const data = sec.body.data;
    const sites = new Set<string>();
    for (let p = Number(start - sec.addr); p + 8 <= Number(stop - sec.addr); p += 8)
      sites.add(`${this.elf.littleEndian ? data.readBigUInt64LE(p) : data.readBigUInt64BE(p)}`);
    return sites;
  }

  /** A module is relocatable: each entry of its __mcount_loc is a relocation against the code it points into. */
  private moduleMcount(): Set<string> | undefined {
    const index = this.elf.findSection('__mcount_loc');
    if (index === undefined) return undefined;
    const sites = new Set<string>();
    for (const r of this.elf.relocationsFor(index)) {
      const rel = this.elf.section(r);
      if (rel.body.kind !== 'relocations') continue;
      for (const x of rel.body.table) {
        const sym = this.elf.symbol(x.symbol);
        sites.add(`${sym.shndx}:${sym.value + x.addend}`);
      }
    }
    return sites;
  }
}
