import { readElfFile, writeElfFile, machineName, type ElfObject, SHT } from '../../elf/index.js';

export interface ElfCommandArgs {
  file: string;
  sections: boolean;
  symbols: boolean;
  json: boolean;
  write?: string;
}

/** `klpforge elf FILE`: what the ELF layer sees in an object; `--write` round-trips it through the model. */
export async function elfCommand(args: ElfCommandArgs, out: (line: string) => void): Promise<number> {
  const obj = await readElfFile(args.file);
  if (args.write) await writeElfFile(args.write, obj);
  const summary = summarize(obj);
  if (args.json) {
    out(
      JSON.stringify({
        file: args.file,
        ...summary,
        ...(args.sections
          ? { sectionList: obj.sections.map((s, i) => ({ index: i, name: s.name, type: s.type, size: sizeOf(obj, i) })) }
          : {}),
        ...(args.symbols
          ? {
              symbolList: obj.symbols.map((s, i) => ({
                index: i,
                name: s.name,
                bind: s.bind,
                type: s.type,
                shndx: s.shndx,
                value: s.value.toString(),
              })),
            }
          : {}),
      }),
    );
    return 0;
  }
  out(
    `${args.file}: ELF64 ${summary.endian}-endian ${summary.machine} ${summary.type}, ${summary.sections} sections, ` +
      `${summary.symbols} symbols, ${summary.relocations} relocations`,
  );
  if (args.sections) obj.sections.forEach((s, i) => out(`  [${i}] ${s.name} type=${s.type} size=${sizeOf(obj, i)}`));
  if (args.symbols) obj.symbols.forEach((s, i) => out(`  ${i}: ${s.name} bind=${s.bind} type=${s.type} shndx=${s.reserved || s.shndx}`));
  if (args.write) out(`wrote ${args.write}`);
  return 0;
}

function summarize(obj: ElfObject) {
  let relocations = 0;
  for (const s of obj.sections) if (s.body.kind === 'relocations') relocations += s.body.table.length;
  const types: Record<number, string> = { 1: 'relocatable', 2: 'executable', 3: 'shared object' };
  return {
    endian: obj.ident.endian,
    machine: machineName(obj.ident.machine),
    type: types[obj.ident.type] ?? `type ${obj.ident.type}`,
    sections: obj.sections.length,
    symbols: obj.symbols.length,
    relocations,
  };
}

function sizeOf(obj: ElfObject, i: number): string {
  const s = obj.sections[i]!;
  switch (s.body.kind) {
    case 'bytes':
      return String(s.body.data.length);
    case 'nobits':
      return s.body.size.toString();
    case 'symtab':
      return String(s.body.symbols.length * 24);
    case 'strtab':
      return String(s.body.table.size);
    case 'relocations':
      return String(s.body.table.length * (s.type === SHT.RELA ? 24 : 16));
    case 'group':
      return String(4 + 4 * s.body.members.length);
    case 'shndx':
      return String(obj.symbols.length * 4);
  }
}
