/**
 * How long the CLI takes to start, the cost a pipeline pays once per command:
 * N runs each of `node -e 0` (what node itself costs here: the floor),
 * `klpforge --version`, `klpforge --help`, and `klpforge diff A.o B.o --json`
 * on two small objects compiled here with gcc (one function changed).
 * Runs are interleaved (one of each case per round), so a change in the
 * machine's load falls on every case alike; median and p90 of the wall time,
 * the median's overhead above the floor, and the mean CPU time (user + system,
 * all of node's threads: less moved by other work on the machine than wall time).
 *
 *   npm run bench:startup -- [--runs N] [--klpforge BIN]... [--node-option OPT]...
 *
 * --klpforge (repeatable) times other checkouts' bin/klpforge.js beside this
 * one's (before/after comparisons); --node-option passes an option to every
 * node started (e.g. --jitless), the floor's included.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// The differ needs what the kernel's build gives it: function sections and an fentry call per function.
const CFLAGS = ['-O2', '-ffunction-sections', '-fdata-sections', '-pg', '-mfentry', '-mrecord-mcount', '-fno-PIE', '-mcmodel=kernel'];
const SOURCE = `extern int consume(long);
int limit = 4;
int show(long x) { return consume(x + limit); }
int other(long x) { return consume(x * 2); }
`;

interface Options {
  runs: number;
  bins: string[];
  nodeOptions: string[];
}

function options(argv: string[]): Options {
  const o: Options = { runs: 30, bins: [], nodeOptions: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--klpforge') o.bins.push(path.resolve(argv[++i]!));
    else if (a === '--node-option') o.nodeOptions.push(argv[++i]!);
    else throw new Error(`unknown argument ${a}: see the comment at the top of scripts/bench-startup.ts`);
  }
  if (!(o.runs >= 1)) throw new Error('--runs needs a positive number');
  if (o.bins.length === 0) o.bins.push(path.join(repo, 'bin/klpforge.js'));
  return o;
}

interface Case {
  label: string;
  argv: string[];
  exitCode: number;
}

/** Two builds of one object, the second with `show` changed. */
async function compileObjects(dir: string): Promise<[string, string]> {
  const compile = async (name: string, source: string) => {
    await writeFile(path.join(dir, `${name}.c`), source);
    execFileSync('gcc', ['-c', ...CFLAGS, '-o', path.join(dir, `${name}.o`), path.join(dir, `${name}.c`)]);
    return path.join(dir, `${name}.o`);
  };
  return [await compile('orig', SOURCE), await compile('patched', SOURCE.replace('x + limit', 'x - limit'))];
}

function cases(o: Options, orig: string, patched: string): Case[] {
  const list: Case[] = [{ label: 'node -e 0 (floor)', argv: [...o.nodeOptions, '-e', '0'], exitCode: 0 }];
  for (const bin of o.bins) {
    // Name the checkout only when there are several to tell apart.
    const who = o.bins.length > 1 ? `${path.relative(process.cwd(), bin) || bin}: ` : '';
    list.push(
      { label: `${who}klpforge --version`, argv: [...o.nodeOptions, bin, '--version'], exitCode: 0 },
      { label: `${who}klpforge --help`, argv: [...o.nodeOptions, bin, '--help'], exitCode: 0 },
      { label: `${who}klpforge diff A.o B.o --json`, argv: [...o.nodeOptions, bin, 'diff', orig, patched, '--json'], exitCode: 0 },
    );
  }
  return list;
}

const CLOCK_TICKS_PER_MS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) / 1000;

/** CPU time of this process's waited-for children so far (Linux: cutime + cstime of /proc/self/stat), in ms. */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name, which may hold spaces: state is the first, cutime the 14th, cstime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS_PER_MS;
}

/** One run: its wall time in ms, from spawn to exit as a shell running the command would see it, and its CPU time. */
function runOnce(c: Case): { wall: number; cpu: number } {
  const cpu0 = childrenCpuMs();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, c.argv, { encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== c.exitCode) throw new Error(`${c.label}: exit ${r.status ?? r.signal}, expected ${c.exitCode}\n${r.stderr}`);
  return { wall, cpu: childrenCpuMs() - cpu0 };
}

const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: readonly number[]): number => {
  const s = sorted(xs);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** Nearest-rank percentile. */
const percentile = (xs: readonly number[], p: number): number => sorted(xs)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)]!;

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klpforge-bench-startup-'));
  try {
    const [orig, patched] = await compileObjects(dir);
    const list = cases(o, orig, patched);
    // Untimed: fills the page cache with node, the modules and the objects, and checks each command works.
    for (const c of list) for (let i = 0; i < 2; i++) runOnce(c);
    const load = os.loadavg()[0]!;
    const times = list.map(() => [] as number[]);
    // Clock ticks are 10 ms: summed over the runs, the mean is still good to a millisecond or two.
    const cpu = list.map(() => 0);
    for (let r = 0; r < o.runs; r++)
      list.forEach((c, i) => {
        const t = runOnce(c);
        times[i]!.push(t.wall);
        cpu[i]! += t.cpu;
      });
    const floor = median(times[0]!);
    const floorCpu = cpu[0]! / o.runs;
    const when = `load average ${load.toFixed(2)} before, ${os.loadavg()[0]!.toFixed(2)} after`;
    console.log(`node ${process.version}, ${os.cpus().length} cores, ${o.runs} runs each, ${when}`);
    console.log('| command | median | p90 | min | median above the floor | CPU, mean | CPU above the floor |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    list.forEach((c, i) => {
      const t = times[i]!;
      const mean = cpu[i]! / o.runs;
      const above = (x: number) => (i === 0 ? '—' : `+${x.toFixed(0)} ms`);
      const ms = (x: number) => `${x.toFixed(0)} ms`;
      console.log(
        `| ${c.label} | ${ms(median(t))} | ${ms(percentile(t, 90))} | ${ms(Math.min(...t))} | ${above(median(t) - floor)} | ${ms(mean)} | ${above(mean - floorCpu)} |`,
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
