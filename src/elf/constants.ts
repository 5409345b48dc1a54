/** ELF constants (from the gABI and <elf.h>) and the index types the model uses. */

/** An index into an object's section header table. */
export type SectionIndex = number & { readonly __brand: 'SectionIndex' };
/** An index into a symbol table. */
export type SymbolIndex = number & { readonly __brand: 'SymbolIndex' };

export const sectionIndex = (n: number): SectionIndex => n as SectionIndex;
export const symbolIndex = (n: number): SymbolIndex => n as SymbolIndex;

export const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;
export const EV_CURRENT = 1;

export const EHDR64_SIZE = 64;
export const SHDR64_SIZE = 64;
export const SYM64_SIZE = 24;
export const RELA64_SIZE = 24;
export const REL64_SIZE = 16;

export const ET = { NONE: 0, REL: 1, EXEC: 2, DYN: 3, CORE: 4 } as const;

export const EM = {
  NONE: 0,
  SPARC: 2,
  X86_386: 3,
  PPC: 20,
  PPC64: 21,
  S390: 22,
  ARM: 40,
  X86_64: 62,
  AARCH64: 183,
  RISCV: 243,
  LOONGARCH: 258,
} as const;

export const SHT = {
  NULL: 0,
  PROGBITS: 1,
  SYMTAB: 2,
  STRTAB: 3,
  RELA: 4,
  HASH: 5,
  DYNAMIC: 6,
  NOTE: 7,
  NOBITS: 8,
  REL: 9,
  SHLIB: 10,
  DYNSYM: 11,
  INIT_ARRAY: 14,
  FINI_ARRAY: 15,
  PREINIT_ARRAY: 16,
  GROUP: 17,
  SYMTAB_SHNDX: 18,
} as const;

export const SHF = {
  WRITE: 0x1n,
  ALLOC: 0x2n,
  EXECINSTR: 0x4n,
  MERGE: 0x10n,
  STRINGS: 0x20n,
  INFO_LINK: 0x40n,
  LINK_ORDER: 0x80n,
  OS_NONCONFORMING: 0x100n,
  GROUP: 0x200n,
  TLS: 0x400n,
  COMPRESSED: 0x800n,
  /** Linux: a relocation section the livepatch core applies itself. */
  RELA_LIVEPATCH: 0x00100000n,
} as const;

/** Reserved section indexes: a symbol's st_shndx in [LORESERVE, HIRESERVE] is not a section. */
export const SHN = {
  UNDEF: 0,
  LORESERVE: 0xff00,
  ABS: 0xfff1,
  COMMON: 0xfff2,
  XINDEX: 0xffff,
  HIRESERVE: 0xffff,
  /** Linux: a symbol the livepatch core resolves at load time (.klp.sym.*). */
  LIVEPATCH: 0xff20,
} as const;

export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;
export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4, COMMON: 5, TLS: 6 } as const;
export const STV = { DEFAULT: 0, INTERNAL: 1, HIDDEN: 2, PROTECTED: 3 } as const;

export const GRP_COMDAT = 0x1;

export function machineName(machine: number): string {
  for (const [name, value] of Object.entries(EM)) if (value === machine) return name.toLowerCase();
  return `machine ${machine}`;
}
