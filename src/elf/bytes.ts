import { ElfError, hex } from './errors.js';

/**
 * Endian-aware, bounds-checked access to a file's bytes. Every read of a
 * header field goes through here so a bad offset becomes an ElfError naming
 * the file and the structure, never a RangeError.
 */
export class ByteReader {
  readonly view: DataView;
  readonly little: boolean;

  constructor(
    readonly buf: Buffer,
    little: boolean,
    readonly file: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.little = little;
  }

  get length(): number {
    return this.buf.length;
  }

  /** Checks that [offset, offset+size) lies in the file; `what` names the structure for the error. */
  require(offset: bigint | number, size: bigint | number, what: string): number {
    const off = BigInt(offset);
    const len = BigInt(size);
    if (off < 0n || len < 0n || off + len > BigInt(this.buf.length)) {
      throw new ElfError(
        'ELF_TRUNCATED',
        this.file,
        `${what} at offset ${hex(off)}, size ${hex(len)}, extends past the end of the file (size ${hex(this.buf.length)})`,
      );
    }
    return Number(off);
  }

  u8(off: number): number {
    return this.view.getUint8(off);
  }
  u16(off: number): number {
    return this.view.getUint16(off, this.little);
  }
  u32(off: number): number {
    return this.view.getUint32(off, this.little);
  }
  u64(off: number): bigint {
    return this.view.getBigUint64(off, this.little);
  }
  i64(off: number): bigint {
    return this.view.getBigInt64(off, this.little);
  }
}

/** The writing twin of ByteReader over a preallocated output buffer. */
export class ByteWriter {
  readonly view: DataView;

  constructor(
    readonly buf: Buffer,
    readonly little: boolean,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  u8(off: number, v: number): void {
    this.view.setUint8(off, v);
  }
  u16(off: number, v: number): void {
    this.view.setUint16(off, v, this.little);
  }
  u32(off: number, v: number): void {
    this.view.setUint32(off, v, this.little);
  }
  u64(off: number, v: bigint): void {
    this.view.setBigUint64(off, v, this.little);
  }
  i64(off: number, v: bigint): void {
    this.view.setBigInt64(off, v, this.little);
  }
}
