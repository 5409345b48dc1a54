/**
 * How the differ scales: the fixture kernel's whole function-sections
 * vmlinux.o diffed against a copy with one function changed, then the same at
 * 2× and 4× the section count (every section, symbol and relocation
 * duplicated under new names), to show the cost grows linearly.
 *   npm run build && node --expose-gc dist/scripts/bench-diff.js [FILE]
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { diffObjects } from '../src/diff/index.js';
import {
  ElfObject,
  type ElfSymbol,
  parseElf,
  RelocationTable,
  type Section,
  type SectionIndex,
  serializeElf,
  SHN,
  STB,
} from '../src/elf/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const mib = (n: number) => (n / (1 << 20)).toFixed(0);

/** `copies` copies of every section and defined symbol, renamed `.dupN`, relocations pointing within their copy. */
function scale(obj: ElfObject, copies: number): ElfObject {
  if (copies === 1) return obj;
  const n = obj.sections.length;
  const symtabIdx = obj.symtab!;
  const syms = obj.symbols;
  const locals = syms.filter((s) => s.bind === STB.LOCAL);
  const globals = syms.filter((s) => s.bind !== STB.LOCAL);
  const dup = (s: ElfSymbol, k: number): ElfSymbol => ({
    ...s,
    nameOffset: undefined,
    name: s.name === '' ? '' : `${s.name}.dup${k}`,
    shndx: (s.reserved === 0 && s.shndx !== SHN.UNDEF ? s.shndx + k * n : s.shndx) as SectionIndex,
  });
  const isDefined = (s: ElfSymbol) => s.reserved === 0 && s.shndx !== SHN.UNDEF;
  const newSyms: ElfSymbol[] = [...locals];
  const map: number[][] = [syms.map((_s, i) => i)];
  for (let k = 1; k < copies; k++) map.push(new Array<number>(syms.length));
  for (let k = 1; k < copies; k++)
    locals.forEach((s, i) => {
      if (i > 0 && isDefined(s)) {
        map[k]![syms.indexOf(s)] = newSyms.length;
        newSyms.push(dup(s, k));
      }
    });
  const globalStart = newSyms.length;
  globals.forEach((s) => {
    map[0]![syms.indexOf(s)] = newSyms.length;
    newSyms.push(s);
  });
  for (let k = 1; k < copies; k++)
    globals.forEach((s) => {
      if (isDefined(s)) {
        map[k]![syms.indexOf(s)] = newSyms.length;
        newSyms.push(dup(s, k));
      }
    });
  locals.forEach((_s, i) => {
    map[0]![i] = i;
  });
  for (let k = 1; k < copies; k++)
    syms.forEach((_s, i) => {
      if (map[k]![i] === undefined) map[k]![i] = map[0]![i]!;
    });
  void globalStart;

  const sections: Section[] = [];
  for (let k = 0; k < copies; k++) {
    obj.sections.forEach((s, i) => {
      if (k > 0 && (i === 0 || i === symtabIdx || s.body.kind === 'strtab' || s.body.kind === 'shndx')) {
        sections.push({ ...s, name: `${s.name}.unused${k}`, type: 1, link: 0, info: 0, body: { kind: 'bytes', data: Buffer.alloc(0) } });
        return;
      }
      const name = k === 0 ? s.name : `${s.name}.dup${k}`;
      let body = s.body;
      if (body.kind === 'relocations') {
        const t = body.table;
        const m = map[k]!;
        body = {
          kind: 'relocations',
          table: new RelocationTable(
            t.withAddend,
            t.offsets,
            t.types,
            Uint32Array.from(t.symbols, (x) => m[x]!),
            t.addends,
          ),
        };
      }
      if (body.kind === 'symtab') body = { kind: 'symtab', symbols: newSyms };
      if (body.kind === 'group') body = { ...body, members: body.members.map((x) => (x + k * n) as SectionIndex) };
      const remapLink = k > 0 && (body.kind === 'relocations' || body.kind === 'group');
      sections.push({
        ...s,
        name,
        nameOffset: k === 0 ? s.nameOffset : undefined,
        body,
        link: remapLink ? symtabIdx : s.link,
        info: body.kind === 'relocations' ? s.info + k * n : s.info,
      });
    });
  }
  return new ElfObject(obj.ident, sections, obj.shstrndx);
}

function patchOne(buf: Buffer, file: string, fn: string): ElfObject {
  const obj = parseElf(Buffer.from(buf), file);
  const idx = obj.findSection(`.text.${fn}`)!;
  const body = obj.sections[idx]!.body;
  if (body.kind !== 'bytes') throw new Error('no code');
  const data = Buffer.from(body.data);
  data[data.length - 2] = (data[data.length - 2] ?? 0) ^ 0xff;
  obj.sections[idx]!.body = { kind: 'bytes', data };
  return parseElf(serializeElf(obj), `${file} (patched)`);
}

async function main(): Promise<void> {
  const file =
    process.argv[2] ??
    (JSON.parse(execFileSync(path.join(repo, 'scripts/fetch-kernel'), ['--check'], { encoding: 'utf8' })) as { vmlinuxO: string }).vmlinuxO;
  const buf = await readFile(file);
  console.log(`file: ${file} (${mib(buf.length)} MiB)`);
  for (const copies of [1, 2, 4]) {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const orig = scale(parseElf(buf, file), copies);
    const patched = scale(patchOne(buf, file, 'cmdline_proc_show'), copies);
    gc?.();
    const rssBefore = process.memoryUsage().rss;
    const t0 = process.hrtime.bigint();
    const r = diffObjects(orig, patched);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    let relocs = 0;
    for (const s of orig.sections) if (s.body.kind === 'relocations') relocs += s.body.table.length;
    console.log(
      `${copies}×: ${orig.sections.length} sections, ${orig.symbols.length} symbols, ${relocs} relocations: diff ${ms.toFixed(0)} ms, ` +
        `changed ${r.changed.map((f) => f.name).join(',')}, RSS ${mib(process.memoryUsage().rss)} MiB (before diff ${mib(rssBefore)} MiB), peak RSS ${mib(process.resourceUsage().maxRSS * 1024)} MiB`,
    );
  }
}

await main();
