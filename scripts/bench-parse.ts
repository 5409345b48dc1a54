/**
 * How long parsing a large object takes, and the memory it needs.
 *   npm run build && node --expose-gc dist/scripts/bench-parse.js [FILE] [RUNS]
 * FILE defaults to the fixture kernel's function-sections vmlinux.o.
 * Each run parses from a Buffer already in memory (file I/O is timed separately),
 * then serialises the model back, as the generator will.
 */
import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseElf, serializeElf } from '../src/elf/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function defaultFile(): string {
  const json = execFileSync(path.join(repo, 'scripts/fetch-kernel'), ['--check'], { encoding: 'utf8' });
  return (JSON.parse(json) as { vmlinuxO: string }).vmlinuxO;
}

const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
const mib = (n: number) => (n / (1 << 20)).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const file = process.argv[2] ?? defaultFile();
  const runs = Number(process.argv[3] ?? 5);
  const gc = (globalThis as { gc?: () => void }).gc;
  const baseRss = process.memoryUsage().rss;

  const t0 = process.hrtime.bigint();
  const buf = await readFile(file);
  const readMs = ms(t0, process.hrtime.bigint());

  const parseTimes: number[] = [];
  const writeTimes: number[] = [];
  let peakHeapDelta = 0;
  let summary = '';
  for (let i = 0; i < runs; i++) {
    gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const a = process.hrtime.bigint();
    const model = parseElf(buf, file);
    const b = process.hrtime.bigint();
    const out = serializeElf(model, file);
    const c = process.hrtime.bigint();
    parseTimes.push(ms(a, b));
    writeTimes.push(ms(b, c));
    peakHeapDelta = Math.max(peakHeapDelta, process.memoryUsage().heapUsed - heapBefore);
    let relocs = 0;
    for (const s of model.sections) if (s.body.kind === 'relocations') relocs += s.body.table.length;
    summary = `${model.sections.length} sections, ${model.symbols.length} symbols, ${relocs} relocations; rewritten ${mib(out.length)} MiB`;
  }
  const peakRss = process.resourceUsage().maxRSS * 1024;
  console.log(`file: ${file} (${mib((await stat(file)).size)} MiB): ${summary}`);
  console.log(`read file: ${readMs.toFixed(0)} ms`);
  console.log(`parse: median ${median(parseTimes).toFixed(0)} ms, min ${Math.min(...parseTimes).toFixed(0)} ms over ${runs} runs`);
  console.log(`write: median ${median(writeTimes).toFixed(0)} ms, min ${Math.min(...writeTimes).toFixed(0)} ms`);
  console.log(`memory: peak RSS ${mib(peakRss)} MiB (process at start ${mib(baseRss)} MiB), model heap ≈ ${mib(peakHeapDelta)} MiB`);
}

await main();
