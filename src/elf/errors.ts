import { KlpforgeError } from '../util/errors.js';

export type ElfErrorCode =
  | 'ELF_NOT_ELF' // no ELF magic
  | 'ELF_UNSUPPORTED' // a valid ELF we do not handle (ELF32, unknown encoding)
  | 'ELF_TRUNCATED' // something points past the end of the file
  | 'ELF_MALFORMED' // an index, size or table that cannot be right
  | 'ELF_UNWRITABLE'; // the model cannot be written back as it stands

/** A problem with one ELF file, worded as `FILE: what is wrong`. */
export class ElfError extends KlpforgeError {
  readonly file: string;
  readonly detail: string;

  constructor(code: ElfErrorCode, file: string, detail: string) {
    super(code, `${file}: ${detail}`, 1);
    this.file = file;
    this.detail = detail;
  }
}

export const hex = (n: number | bigint): string => `0x${n.toString(16)}`;
