import { ElfObject, SHF, type SectionIndex } from '../../elf/index.js';
import type { ConvertProblem } from './problems.js';

/** kernel-headers/klpforge-convert.h's KLPFORGE_SYMPOS(sym, objname, pos): which of several namesakes a reference means. */
export interface SymposAnnotation {
  name: string;
  objname: string;
  sympos: number;
}

export const ANNOTATION_SECTION = '.klpforge.sympos';

/** Each annotation is one NUL-terminated `sym:objname:pos` string of the section. */
export function readAnnotations(
  ko: ElfObject,
  moduleName: string,
): { annotations: Map<string, SymposAnnotation>; problems: ConvertProblem[] } {
  const annotations = new Map<string, SymposAnnotation>();
  const problems: ConvertProblem[] = [];
  for (const index of ko.sectionsNamed(ANNOTATION_SECTION)) {
    const sec = ko.section(index);
    if (sec.body.kind !== 'bytes') continue;
    for (const text of sec.body.data.toString('latin1').split('\0')) {
      if (text === '') continue;
      const m = /^([A-Za-z_][\w.$]*):([\w-]+):(\d+)$/.exec(text);
      if (!m) {
        problems.push({ code: 'CONVERT_ANNOTATION', message: `${moduleName}: KLPFORGE_SYMPOS("${text}") is not sym:objname:pos` });
        continue;
      }
      const a = { name: m[1]!, objname: m[2]!.replace(/-/g, '_'), sympos: Number(m[3]) };
      const earlier = annotations.get(a.name);
      if (earlier && (earlier.objname !== a.objname || earlier.sympos !== a.sympos))
        problems.push({
          code: 'CONVERT_ANNOTATION',
          message: `${moduleName}: KLPFORGE_SYMPOS(${a.name}) is given twice, as ${earlier.objname} ${earlier.sympos} and ${a.objname} ${a.sympos}: keep one`,
        });
      annotations.set(a.name, a);
    }
  }
  return { annotations, problems };
}

/** The annotations stay in the output for the record, but unallocated: the module loader loads nothing of them. */
export function unallocateAnnotations(ko: ElfObject): ElfObject {
  const drop = new Set(ko.sectionsNamed(ANNOTATION_SECTION));
  if (drop.size === 0) return ko;
  return new ElfObject(
    ko.ident,
    ko.sections.map((s, i) => (drop.has(i as SectionIndex) ? { ...s, flags: s.flags & ~SHF.ALLOC } : s)),
    ko.shstrndx,
    ko.programHeaders,
  );
}
