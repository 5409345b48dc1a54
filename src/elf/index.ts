export * from './constants.js';
export { ElfError, type ElfErrorCode } from './errors.js';
export { ElfObject, type ElfIdent, type ElfSymbol, type Section, type SectionBody, type GroupBody, type ProgramHeaders } from './model.js';
export { RelocationTable, type Relocation } from './relocations.js';
export { StringTable } from './strtab.js';
export { parseElf, readElfFile } from './read.js';
export { ElfPeek, type PeekedSection, type PeekedSymbol } from './peek.js';
export { serializeElf, writeElfFile } from './write.js';
export { removeSections } from './edit.js';
