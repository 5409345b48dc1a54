import type { ElfObject, Section, SectionBody } from '../../src/elf/index.js';

/**
 * Compares two models field by field, ignoring where things were in the file
 * (offsets), and returns the first difference as text, or undefined when equal.
 */
export function modelDifference(a: ElfObject, b: ElfObject): string | undefined {
  const ia = JSON.stringify(a.ident, big);
  const ib = JSON.stringify(b.ident, big);
  if (ia !== ib) return `identity: ${ia} vs ${ib}`;
  if (a.shstrndx !== b.shstrndx) return `shstrndx ${a.shstrndx} vs ${b.shstrndx}`;
  if (a.sections.length !== b.sections.length) return `${a.sections.length} vs ${b.sections.length} sections`;
  for (let i = 0; i < a.sections.length; i++) {
    const d = sectionDifference(a.sections[i]!, b.sections[i]!);
    if (d) return `section ${i} (${a.sections[i]!.name}): ${d}`;
  }
  return undefined;
}

function sectionDifference(a: Section, b: Section): string | undefined {
  for (const k of ['name', 'type', 'flags', 'addr', 'addralign', 'entsize', 'link', 'info'] as const) {
    if (a[k] !== b[k]) return `${k} ${a[k]} vs ${b[k]}`;
  }
  return bodyDifference(a.body, b.body);
}

function bodyDifference(a: SectionBody, b: SectionBody): string | undefined {
  if (a.kind !== b.kind) return `body ${a.kind} vs ${b.kind}`;
  switch (a.kind) {
    case 'bytes':
      return a.data.equals((b as typeof a).data) ? undefined : 'bytes differ';
    case 'nobits':
      return a.size === (b as typeof a).size ? undefined : 'NOBITS size differs';
    case 'strtab':
      return a.table.bytes().equals((b as typeof a).table.bytes()) ? undefined : 'string table differs';
    case 'shndx':
      return undefined;
    case 'group': {
      const g = b as typeof a;
      return a.flags === g.flags && a.members.join() === g.members.join() ? undefined : 'group differs';
    }
    case 'symtab': {
      const s = (b as typeof a).symbols;
      if (a.symbols.length !== s.length) return `${a.symbols.length} vs ${s.length} symbols`;
      for (let i = 0; i < s.length; i++) {
        const x = a.symbols[i]!;
        const y = s[i]!;
        if (
          x.name !== y.name ||
          x.value !== y.value ||
          x.size !== y.size ||
          x.bind !== y.bind ||
          x.type !== y.type ||
          x.other !== y.other ||
          x.shndx !== y.shndx ||
          x.reserved !== y.reserved
        ) {
          return `symbol ${i} (${x.name}) differs`;
        }
      }
      return undefined;
    }
    case 'relocations': {
      const t = (b as typeof a).table;
      const u = a.table;
      if (u.withAddend !== t.withAddend || u.length !== t.length) return 'relocation count differs';
      for (let i = 0; i < t.length; i++) {
        if (u.offsets[i] !== t.offsets[i] || u.types[i] !== t.types[i] || u.symbols[i] !== t.symbols[i] || u.addends[i] !== t.addends[i]) {
          return `relocation ${i} differs`;
        }
      }
      return undefined;
    }
  }
}

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
