import { constants } from 'node:buffer';
import { writeFile, rename, unlink } from 'node:fs/promises';
import { ByteWriter } from './bytes.js';
import {
  EHDR64_SIZE,
  ELF_MAGIC,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  ET,
  EV_CURRENT,
  REL64_SIZE,
  RELA64_SIZE,
  SHDR64_SIZE,
  SHN,
  SHT,
  SYM64_SIZE,
} from './constants.js';
import { ElfError } from './errors.js';
import { ElfObject, type Section } from './model.js';
import { encodeRelocations } from './relocations.js';
import { StringTable } from './strtab.js';
import { encodeSymbols, needsExtendedIndex } from './symtab.js';

/** Largest object we lay out: what one Buffer can hold. */
const MAX_OBJECT_SIZE = BigInt(constants.MAX_LENGTH) - 1n;

/** A section ready to be laid out: its header fields and final bytes. */
interface Planned {
  section: Section;
  nameOffset: number;
  bytes: Buffer | undefined; // undefined for NOBITS
  size: bigint;
  info: number;
  offset: bigint;
}

/**
 * Serialises a relocatable object: the ELF header, section contents in index
 * order (each at its alignment), then the section header table. Tables are
 * regenerated from the model (symbols, relocations, groups, SYMTAB_SHNDX);
 * other sections are written as they are. More than 65,279 sections use the
 * SHN_XINDEX escapes, adding a `.symtab_shndx` section when the model has none.
 */
export function serializeElf(obj: ElfObject, file = '<model>'): Buffer {
  if (obj.programHeaders || (obj.ident.type !== ET.REL && obj.sections.length > 0)) {
    throw new ElfError('ELF_UNWRITABLE', file, 'only relocatable objects (ET_REL, no program headers) can be written');
  }
  const little = obj.littleEndian;
  const sections = withExtendedIndexSection(obj, file);
  const count = sections.length;
  const extended = count >= SHN.LORESERVE;

  const shstrtab = count > 0 ? stringTableOf(sections, obj.shstrndx, file, 'section name table') : new StringTable();
  const nameOffsets = sections.map((s) => shstrtab.offsetOf(s.name, s.nameOffset));

  // Symbol tables first: their names may grow their string tables, whose bytes come later.
  const symtabBytes = new Map<number, { symtab: Buffer; shndx: Buffer }>();
  sections.forEach((s, i) => {
    if (s.body.kind !== 'symtab') return;
    const strtab = stringTableOf(sections, s.link, file, `string table of ${s.name}`);
    const offsets = new Uint32Array(s.body.symbols.length);
    s.body.symbols.forEach((sym, j) => {
      offsets[j] = strtab.offsetOf(sym.name, sym.nameOffset);
    });
    symtabBytes.set(i, encodeSymbols(s.body.symbols, offsets, little));
  });

  // Every name has its offset now, so string table bytes below are final.
  const planned: Planned[] = sections.map((s, i) => {
    const body = s.body;
    let bytes: Buffer | undefined;
    let info = s.info;
    switch (body.kind) {
      case 'bytes':
        bytes = body.data;
        break;
      case 'nobits':
        bytes = undefined;
        break;
      case 'strtab':
        bytes = body.table.bytes();
        break;
      case 'symtab':
        bytes = symtabBytes.get(i)!.symtab;
        info = ElfObject.localCount(body.symbols);
        break;
      case 'relocations':
        bytes = encodeRelocations(body.table, little);
        break;
      case 'group': {
        bytes = Buffer.alloc(4 + 4 * body.members.length);
        const w = new ByteWriter(bytes, little);
        w.u32(0, body.flags);
        body.members.forEach((m, k) => w.u32(4 + 4 * k, m));
        break;
      }
      case 'shndx': {
        const encoded = symtabBytes.get(s.link);
        if (!encoded)
          throw new ElfError(
            'ELF_UNWRITABLE',
            file,
            `section ${i} (${s.name}): SHT_SYMTAB_SHNDX linked to ${s.link}, which is not a symbol table`,
          );
        bytes = encoded.shndx;
        break;
      }
    }
    const size = body.kind === 'nobits' ? body.size : BigInt(bytes!.length);
    return { section: s, nameOffset: nameOffsets[i]!, bytes, size, info, offset: 0n };
  });

  let cursor = BigInt(EHDR64_SIZE);
  planned.forEach((p, i) => {
    if (i === 0) return;
    const align = p.section.addralign > 1n ? p.section.addralign : 1n;
    cursor = ((cursor + align - 1n) / align) * align;
    p.offset = cursor;
    if (p.bytes) cursor += p.size;
    if (cursor > MAX_OBJECT_SIZE) {
      throw new ElfError(
        'ELF_UNWRITABLE',
        file,
        `section ${i} (${p.section.name}): alignment ${p.section.addralign} and size ${p.size} put the object past ${MAX_OBJECT_SIZE} bytes`,
      );
    }
  });
  const shoff = count > 0 ? (cursor + 7n) & ~7n : 0n;
  const total = Number(shoff) + count * SHDR64_SIZE;

  const out = Buffer.alloc(total);
  const w = new ByteWriter(out, little);
  ELF_MAGIC.copy(out, 0);
  out[4] = ELFCLASS64;
  out[5] = little ? ELFDATA2LSB : ELFDATA2MSB;
  out[6] = EV_CURRENT;
  out[7] = obj.ident.osabi;
  out[8] = obj.ident.abiVersion;
  w.u16(16, obj.ident.type);
  w.u16(18, obj.ident.machine);
  w.u32(20, obj.ident.version);
  w.u64(24, obj.ident.entry);
  w.u64(32, 0n);
  w.u64(40, shoff);
  w.u32(48, obj.ident.flags);
  w.u16(52, EHDR64_SIZE);
  w.u16(54, 0);
  w.u16(56, 0);
  w.u16(58, count > 0 ? SHDR64_SIZE : 0);
  w.u16(60, extended ? 0 : count);
  w.u16(62, obj.shstrndx >= SHN.LORESERVE ? SHN.XINDEX : obj.shstrndx);

  planned.forEach((p, i) => {
    const s = p.section;
    const o = Number(shoff) + i * SHDR64_SIZE;
    if (i === 0) {
      // The null section carries the escaped counts (gABI "Extended Section Numbering").
      if (extended) w.u64(o + 32, BigInt(count));
      if (obj.shstrndx >= SHN.LORESERVE) w.u32(o + 40, obj.shstrndx);
      return;
    }
    if (p.bytes) p.bytes.copy(out, Number(p.offset));
    w.u32(o, p.nameOffset);
    w.u32(o + 4, s.type);
    w.u64(o + 8, s.flags);
    w.u64(o + 16, s.addr);
    w.u64(o + 24, p.offset);
    w.u64(o + 32, p.size);
    w.u32(o + 40, s.link);
    w.u32(o + 44, p.info);
    w.u64(o + 48, s.addralign);
    w.u64(o + 56, entsizeOf(s));
  });
  return out;
}

/** Writes atomically: a reader never sees half an object. */
export async function writeElfFile(path: string, obj: ElfObject): Promise<void> {
  const bytes = serializeElf(obj, path);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

function entsizeOf(s: Section): bigint {
  switch (s.body.kind) {
    case 'symtab':
      return BigInt(SYM64_SIZE);
    case 'relocations':
      return BigInt(s.body.table.withAddend ? RELA64_SIZE : REL64_SIZE);
    case 'shndx':
      return 4n;
    case 'group':
      return 4n;
    default:
      return s.entsize;
  }
}

function stringTableOf(sections: readonly Section[], index: number, file: string, what: string): StringTable {
  const body = sections[index]?.body;
  if (body?.kind !== 'strtab') throw new ElfError('ELF_UNWRITABLE', file, `${what}: section ${index} is not a string table`);
  return body.table;
}

/** The model's sections, plus a `.symtab_shndx` when symbols need one and none exists. */
function withExtendedIndexSection(obj: ElfObject, file: string): Section[] {
  const symtab = obj.symtab;
  if (symtab === undefined || !needsExtendedIndex(obj.symbols)) return obj.sections;
  if (obj.sections.some((s) => s.body.kind === 'shndx' && s.link === symtab)) return obj.sections;
  if (obj.sections.length + 1 > 0xffffffff) throw new ElfError('ELF_UNWRITABLE', file, 'too many sections');
  return [
    ...obj.sections,
    {
      name: '.symtab_shndx',
      type: SHT.SYMTAB_SHNDX,
      flags: 0n,
      addr: 0n,
      addralign: 4n,
      entsize: 4n,
      link: symtab,
      info: 0,
      body: { kind: 'shndx' },
    },
  ];
}
