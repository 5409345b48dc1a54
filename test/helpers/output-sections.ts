import { type ElfObject, STT } from '../../src/elf/index.js';

/** Names of an object's sections with bytes, with their sizes. */
export const sectionSizes = (obj: ElfObject): Record<string, number> =>
  Object.fromEntries(
    obj.sections.filter((s) => s.body.kind === 'bytes').map((s) => [s.name, s.body.kind === 'bytes' ? s.body.data.length : 0]),
  );

/** The relocations of a section as `offset type symbol+addend` (a section symbol named by its section), by offset. */
export function relocations(obj: ElfObject, section: string): string[] {
  const i = obj.findSection(section);
  if (i === undefined) return [];
  const out: string[] = [];
  for (const ri of obj.relocationsFor(i)) {
    const body = obj.sections[ri]!.body;
    if (body.kind !== 'relocations') continue;
    const t = body.table;
    for (let k = 0; k < t.length; k++) {
      const s = obj.symbols[t.symbols[k]!]!;
      const name = s.type === STT.SECTION ? obj.sections[s.shndx]!.name : s.name;
      out.push(`${Number(t.offsets[k]!)} ${t.types[k]!} ${name}+${t.addends[k]!}`);
    }
  }
  return out.sort((a, b) => parseInt(a) - parseInt(b));
}
