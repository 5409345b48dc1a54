/**
 * A string table (SHT_STRTAB). It keeps the bytes it was read from, so names
 * that did not change keep their offsets and a read→write round trip is
 * byte-exact (gas shares suffixes, e.g. `.text` inside `.rela.text`); new
 * names are appended once each. Strings are decoded as latin1 so every byte
 * survives, whatever the encoding of a symbol name.
 */
export class StringTable {
  private base: Buffer;
  private appended: string[] = [];
  private appendedSize = 0;
  /** name → offset of every string starting at a NUL boundary, built on the first miss. */
  private known: Map<string, number> | undefined;

  /** `base` must be empty or end in NUL (the reader checks this). */
  constructor(base: Buffer = Buffer.from([0])) {
    this.base = base.length === 0 ? Buffer.from([0]) : base;
  }

  get size(): number {
    return this.base.length + this.appendedSize;
  }

  /** The string at `offset`, or undefined when the offset is outside the table. */
  get(offset: number): string | undefined {
    if (offset < 0 || offset >= this.size) return undefined;
    if (offset < this.base.length) {
      const end = this.base.indexOf(0, offset);
      return this.base.toString('latin1', offset, end);
    }
    const bytes = this.bytes();
    return bytes.toString('latin1', offset, bytes.indexOf(0, offset));
  }

  /**
   * The offset to store for `name`: `hint` when it still points at `name`
   * (the common, unchanged case), else an existing copy, else a new one.
   */
  offsetOf(name: string, hint?: number): number {
    if (name === '') return 0;
    if (hint !== undefined && hint > 0 && hint < this.base.length && this.matchesAt(name, hint)) return hint;
    const known = this.index();
    const existing = known.get(name);
    if (existing !== undefined) return existing;
    const offset = this.size;
    this.appended.push(name);
    this.appendedSize += Buffer.byteLength(name, 'latin1') + 1;
    known.set(name, offset);
    return offset;
  }

  bytes(): Buffer {
    if (this.appended.length === 0) return this.base;
    const out = Buffer.alloc(this.size);
    this.base.copy(out, 0);
    let off = this.base.length;
    for (const s of this.appended) off += out.write(s, off, 'latin1') + 1;
    return out;
  }

  private matchesAt(name: string, offset: number): boolean {
    const len = Buffer.byteLength(name, 'latin1');
    return offset + len < this.base.length && this.base[offset + len] === 0 && this.base.toString('latin1', offset, offset + len) === name;
  }

  private index(): Map<string, number> {
    if (this.known) return this.known;
    const known = new Map<string, number>();
    let start = 0;
    for (let i = 0; i < this.base.length; i++) {
      if (this.base[i] !== 0) continue;
      if (i > start) {
        const s = this.base.toString('latin1', start, i);
        if (!known.has(s)) known.set(s, start);
      }
      start = i + 1;
    }
    let off = this.base.length;
    for (const s of this.appended) {
      if (!known.has(s)) known.set(s, off);
      off += Buffer.byteLength(s, 'latin1') + 1;
    }
    this.known = known;
    return known;
  }
}
