import {
  ElfObject,
  type ElfSymbol,
  type Relocation,
  RelocationTable,
  SHF,
  SHN,
  SHT,
  type Section,
  type SectionIndex,
} from '../elf/index.js';
import { archRules } from '../diff/arch.js';
import type { GeneratorProblem } from './problems.js';
import type { Exports } from './symvers.js';

const KLP_SYM = /^\.klp\.sym\.([^.]+)\.[^,]+,\d+$/;

/**
 * Section name → the klp object (vmlinux or a module name) whose patched code
 * it holds; null where objects of several targets share a section name.
 */
export type SectionObjects = ReadonlyMap<string, string | null>;

export interface FinalizeResult {
  ko: ElfObject;
  /** klp relocation sections written, by name, with their entry counts. */
  klpSections: Array<{ name: string; entries: number }>;
  problems: GeneratorProblem[];
}

/**
 * The post-link step on the livepatch `.ko`: the linker keeps neither
 * SHN_LIVEPATCH nor SHF_RELA_LIVEPATCH, so the relocations against
 * `.klp.sym.*` symbols are moved out of the ordinary relocation sections
 * into `.klp.rela.OBJNAME.SECTION` ones, and those symbols are marked
 * SHN_LIVEPATCH, as the livepatch core expects (module-elf-format.rst).
 */
export function finalizeModule(
  ko: ElfObject,
  exports: Exports,
  moduleName: string,
  sectionObjects: SectionObjects = new Map(),
): FinalizeResult {
  const problems: GeneratorProblem[] = [];
  const symtabIndex = ko.sections.findIndex((s) => s.type === SHT.SYMTAB);
  const symtab = ko.sections[symtabIndex];
  if (!symtab || symtab.body.kind !== 'symtab') throw new Error(`${moduleName}: no symbol table after linking`);
  const symbols: ElfSymbol[] = symtab.body.symbols.map((s) => ({ ...s }));
  const klpObj = new Map<number, string>();
  const arch = archRules(ko.ident.machine);
  // Left for the module loader (ppc64's .TOC.: it sets the module's own TOC base).
  const loaderSymbols = new Set(arch?.moduleSymbols ?? []);
  symbols.forEach((s, i) => {
    if (s.shndx !== SHN.UNDEF || s.reserved !== 0 || s.name === '' || loaderSymbols.has(s.name)) return;
    const m = KLP_SYM.exec(s.name);
    if (m) {
      klpObj.set(i, m[1]!);
      symbols[i] = { ...s, reserved: SHN.LIVEPATCH };
    } else if (!exports.has(s.name)) {
      problems.push({
        code: 'POST_LINK',
        message: `${moduleName}: ${s.name} is still undefined after linking and the kernel does not export it: the module would not load`,
      });
    }
  });

  const fieldSize = arch?.relocFieldSize ?? new Map<number, number>();
  const sections: Section[] = ko.sections.map((s) => ({ ...s }));
  sections[symtabIndex] = { ...symtab, body: { kind: 'symtab', symbols } };
  const added: Section[] = [];
  const klpSections: FinalizeResult['klpSections'] = [];
  ko.sections.forEach((sec, i) => {
    if (sec.type !== SHT.RELA || sec.body.kind !== 'relocations' || (sec.flags & SHF.RELA_LIVEPATCH) !== 0n) return;
    const keep: Relocation[] = [];
    const moved = new Map<string, Relocation[]>();
    const patchedObject = sectionObjects.get(ko.sections[sec.info]!.name);
    for (const r of sec.body.table) {
      const symbolObject = klpObj.get(r.symbol);
      if (symbolObject === undefined) {
        keep.push(r);
        continue;
      }
      // The livepatch core applies `.klp.rela.OBJ.*` when OBJ is patched: vmlinux's at once, a module's when
      // it loads. A module symbol of another module (its export) is looked up when the patched module loads.
      if (symbolObject !== 'vmlinux' && patchedObject === null) {
        problems.push({
          code: 'POST_LINK',
          message: `${moduleName}: section ${ko.sections[sec.info]!.name} holds code patched into several objects and a reference to ${symbolObject}'s symbols: rename the function in one of the patched files`,
        });
      }
      const obj = symbolObject === 'vmlinux' || patchedObject === undefined || patchedObject === null ? symbolObject : patchedObject;
      const list = moved.get(obj) ?? [];
      list.push(r);
      moved.set(obj, list);
    }
    if (moved.size === 0) return;
    const target = sec.info as SectionIndex;
    sections[i] = { ...sec, body: { kind: 'relocations', table: RelocationTable.from(true, keep) } };
    const targetSection = sections[target]!;
    // x86's apply_relocate_add refuses to write over a non-zero field: the linker must have left them zero.
    if (targetSection.body.kind === 'bytes' && arch?.zeroKlpFields !== false) {
      const data = Buffer.from(targetSection.body.data);
      for (const list of moved.values())
        for (const r of list) data.fill(0, Number(r.offset), Number(r.offset) + (fieldSize.get(r.type) ?? 4));
      sections[target] = { ...targetSection, body: { kind: 'bytes', data } };
    }
    for (const [obj, list] of [...moved].sort((a, b) => a[0].localeCompare(b[0]))) {
      const name = `.klp.rela.${obj}.${ko.sections[target]!.name}`;
      added.push({
        name,
        type: SHT.RELA,
        flags: SHF.ALLOC | SHF.INFO_LINK | SHF.RELA_LIVEPATCH,
        addr: 0n,
        addralign: 8n,
        entsize: 24n,
        link: symtabIndex,
        info: target,
        body: { kind: 'relocations', table: RelocationTable.from(true, list) },
      });
      klpSections.push({ name, entries: list.length });
    }
  });
  return { ko: new ElfObject(ko.ident, [...sections, ...added], ko.shstrndx, ko.programHeaders), klpSections, problems };
}

/** Which klp object each section of the prepared objects patches, for placing klp relocations (see SectionObjects). */
export function sectionObjectsOf(prepared: ReadonlyArray<{ elf: ElfObject; objname: string }>): SectionObjects {
  const owners = new Map<string, string | null>();
  for (const p of prepared) {
    for (const s of p.elf.sections) {
      if (s.type === SHT.RELA || s.type === SHT.SYMTAB || s.type === SHT.STRTAB || s.name === '') continue;
      const seen = owners.get(s.name);
      owners.set(s.name, seen === undefined || seen === p.objname ? p.objname : null);
    }
  }
  return owners;
}
