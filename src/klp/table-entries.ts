import { ElfObject, RelocationTable, type SectionIndex } from '../elf/index.js';

/**
 * Removes whole entries from a table section (fixed-size records such as
 * `__jump_table`), with their relocations; later entries move up and their
 * relocation offsets with them.
 */
export function dropEntries(obj: ElfObject, section: SectionIndex, size: number, entries: ReadonlySet<number>): ElfObject {
  const sec = obj.sections[section]!;
  if (sec.body.kind !== 'bytes' || entries.size === 0) return obj;
  const data = sec.body.data;
  const count = Math.floor(data.length / size);
  // newStart[i]: where entry i lands, or -1 when dropped.
  const newStart = new Int32Array(count);
  const kept: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (entries.has(i)) {
      newStart[i] = -1;
      continue;
    }
    newStart[i] = at;
    kept.push(data.subarray(i * size, (i + 1) * size));
    at += size;
  }
  const sections = obj.sections.map((s) => ({ ...s }));
  sections[section] = { ...sec, body: { kind: 'bytes', data: Buffer.concat(kept) } };
  for (const ri of obj.relocationsFor(section)) {
    const body = obj.sections[ri]!.body;
    if (body.kind !== 'relocations') continue;
    const moved = [];
    for (const r of body.table) {
      const i = Math.floor(Number(r.offset) / size);
      if (i < count && newStart[i]! < 0) continue;
      const shift = i < count ? BigInt(i * size - newStart[i]!) : BigInt(data.length - at);
      moved.push({ ...r, offset: r.offset - shift });
    }
    sections[ri] = { ...sections[ri]!, body: { kind: 'relocations', table: RelocationTable.from(body.table.withAddend, moved) } };
  }
  return new ElfObject(obj.ident, sections, obj.shstrndx, obj.programHeaders);
}
