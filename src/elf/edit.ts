import { SHF, SHT, type SectionIndex, sectionIndex } from './constants.js';
import { ElfError } from './errors.js';
import { ElfObject, type Section } from './model.js';

/**
 * A copy of `obj` without the given sections (and the relocation sections
 * that apply to them), every section index renumbered: sh_link/sh_info,
 * group members, symbols' st_shndx, e_shstrndx. Symbols must not live in a
 * dropped section: that would silently change what they mean.
 */
export function removeSections(obj: ElfObject, drop: ReadonlySet<SectionIndex>): ElfObject {
  const gone = new Set<number>(drop);
  obj.sections.forEach((s, i) => {
    if ((s.type === SHT.RELA || s.type === SHT.REL) && gone.has(s.info)) gone.add(i);
  });
  if (gone.has(0) || gone.has(obj.shstrndx))
    throw new ElfError('ELF_MALFORMED', '(in memory)', 'removeSections: the null section and the section-name table stay');
  const map = new Int32Array(obj.sections.length).fill(-1);
  let next = 0;
  obj.sections.forEach((_, i) => {
    if (!gone.has(i)) map[i] = next++;
  });
  const renumber = (i: number, what: string): number => {
    if (i === 0 || i >= obj.sections.length) return i;
    const m = map[i]!;
    if (m < 0)
      throw new ElfError('ELF_MALFORMED', '(in memory)', `removeSections: ${what} refers to removed section ${obj.sections[i]!.name}`);
    return m;
  };
  const sections: Section[] = [];
  obj.sections.forEach((s, i) => {
    if (gone.has(i)) return;
    const isReloc = s.type === SHT.RELA || s.type === SHT.REL;
    const linksSection =
      isReloc ||
      s.type === SHT.SYMTAB ||
      s.type === SHT.DYNSYM ||
      s.type === SHT.GROUP ||
      s.type === SHT.SYMTAB_SHNDX ||
      (s.flags & SHF.LINK_ORDER) !== 0n;
    const infoIsSection = isReloc || (s.flags & SHF.INFO_LINK) !== 0n;
    let body = s.body;
    if (body.kind === 'group') body = { ...body, members: body.members.map((m) => sectionIndex(renumber(m, `group ${s.name}`))) };
    if (body.kind === 'symtab') {
      body = {
        kind: 'symtab',
        symbols: body.symbols.map((sym) =>
          sym.reserved !== 0 || sym.shndx === 0
            ? sym
            : { ...sym, shndx: sectionIndex(renumber(sym.shndx, `symbol ${sym.name || '(section)'}`)) },
        ),
      };
    }
    sections.push({
      ...s,
      link: linksSection ? renumber(s.link, `sh_link of ${s.name}`) : s.link,
      info: infoIsSection ? renumber(s.info, `sh_info of ${s.name}`) : s.info,
      body,
    });
  });
  return new ElfObject(obj.ident, sections, sectionIndex(map[obj.shstrndx]!), obj.programHeaders);
}
