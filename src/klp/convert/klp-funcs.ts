import { type ElfObject, type Relocation, SHF, STT, type SectionIndex } from '../../elf/index.js';

/**
 * The functions a hand-written livepatch replaces, read from its `struct
 * klp_func` arrays: `{ .old_name = "NAME", .new_func = fn, .old_sympos = N }`.
 *
 * The struct's size depends on the kernel's config (it embeds a kobject), but
 * its first three fields do not: old_name (a pointer), new_func (a pointer),
 * old_sympos (an unsigned long). So an entry is found by its relocations: a
 * pointer to a string followed by a pointer to one of the module's own
 * functions. Its klp_object (`{ .name, .funcs }`) is the pointer to the start
 * of the array: the entry before it is the object's name, NULL for vmlinux.
 */
export interface ReplacedFunction {
  /** `vmlinux` or the patched module's name. */
  objname: string;
  /** klp_func.old_name. */
  name: string;
  /** klp_func.old_sympos: 0 means the name must be unique in its object. */
  sympos: number;
  /** The module's replacement (klp_func.new_func). */
  newFunc: string;
  /** Where the entry is, for messages: `.data+0x40`. */
  where: string;
}

/** Pointer-sized relocation types: a relocation in a klp struct is one of these (x86_64: R_X86_64_64). */
const POINTER_TYPES = new Map<number, Set<number>>([[62, new Set([1])]]);
const POINTER_SIZE = 8;

interface Target {
  section: SectionIndex;
  offset: bigint;
  symbolType: number;
  symbolName: string;
}

export function replacedFunctions(ko: ElfObject): ReplacedFunction[] {
  const pointerTypes = POINTER_TYPES.get(ko.ident.machine) ?? new Set<number>();
  const functionsAt = new Map<string, string>();
  for (const s of ko.symbols) if (s.type === STT.FUNC && s.shndx !== 0) functionsAt.set(`${s.shndx}:${s.value}`, s.name);
  const found: ReplacedFunction[] = [];
  ko.sections.forEach((sec, i) => {
    const index = i as SectionIndex;
    if ((sec.flags & SHF.ALLOC) === 0n || (sec.flags & SHF.EXECINSTR) !== 0n || sec.body.kind !== 'bytes') return;
    const data = sec.body.data;
    const pointers = new Map<bigint, Target>();
    for (const r of ko.relocationsFor(index)) {
      const rel = ko.section(r);
      if (rel.body.kind !== 'relocations') continue;
      for (const x of rel.body.table) if (pointerTypes.has(x.type)) pointers.set(x.offset, targetOf(ko, x, functionsAt));
    }
    // klp_object.funcs pointers into this section: offset of the array → the object's name.
    const objects = new Map<bigint, string>();
    for (const [offset, t] of pointers) {
      if (t.section !== index) continue;
      const name = pointers.get(offset - BigInt(POINTER_SIZE));
      objects.set(t.offset, name !== undefined ? (stringAt(ko, name) ?? '?') : 'vmlinux');
    }
    const starts = [...objects.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [offset, namePtr] of pointers) {
      const fn = pointers.get(offset + BigInt(POINTER_SIZE));
      if (fn === undefined || fn.symbolType !== STT.FUNC) continue;
      const name = stringAt(ko, namePtr);
      if (name === undefined) continue;
      const at = Number(offset) + 2 * POINTER_SIZE;
      const sympos = at + POINTER_SIZE <= data.length ? Number(ko.littleEndian ? data.readBigUInt64LE(at) : data.readBigUInt64BE(at)) : 0;
      // The array this entry is in starts at the nearest klp_object.funcs at or before it.
      const start = starts.filter((s) => s <= offset).pop();
      found.push({
        objname: start !== undefined ? objects.get(start)! : 'vmlinux',
        name,
        sympos,
        newFunc: fn.symbolName,
        where: `${sec.name}+0x${offset.toString(16)}`,
      });
    }
  });
  return found;
}

/** Where a relocation points: a section and offset (a section symbol's addend, or a symbol's value plus it). */
function targetOf(ko: ElfObject, r: Relocation, functionsAt: ReadonlyMap<string, string>): Target {
  const sym = ko.symbol(r.symbol);
  let symbolType = sym.type;
  let symbolName = sym.name;
  const offset = sym.value + r.addend;
  if (sym.type === STT.SECTION) {
    // `.text+0x40` in a relocation: the function defined there, if one is.
    const fn = functionsAt.get(`${sym.shndx}:${offset}`);
    if (fn !== undefined) {
      symbolType = STT.FUNC;
      symbolName = fn;
    }
  }
  return { section: sym.shndx, offset, symbolType, symbolName };
}

/** The NUL-terminated string a pointer points at, if it points into a string or read-only data section. */
function stringAt(ko: ElfObject, t: Target): string | undefined {
  if (t.section === 0) return undefined;
  const sec = ko.section(t.section);
  if (sec.body.kind !== 'bytes' || ((sec.flags & SHF.STRINGS) === 0n && !sec.name.startsWith('.rodata'))) return undefined;
  const data = sec.body.data;
  const start = Number(t.offset);
  const end = data.indexOf(0, start);
  if (start >= data.length || end < 0) return undefined;
  return data.toString('latin1', start, end);
}
