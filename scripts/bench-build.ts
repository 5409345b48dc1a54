/**
 * `klpforge build` of a one-file patch against the fixture kernel with a warm
 * cache, next to its floor and to what kpatch-build does:
 *   - klpforge: the median wall time of N runs of `node bin/klpforge.js build`
 *     (the original build adopted from scripts/fetch-kernel's fsections build,
 *     its index and struct sizes already cached by a first, untimed run);
 *   - the floor: the same recompile command klpforge runs for the patched
 *     file, then `make -C BUILD M=DIR modules` of the same prepared module,
 *     both run directly (median of N);
 *   - the full make after applying the patch, on private copies of the tree
 *     and the build (never the fixture dirs): `--measure-full-make` (minutes;
 *     copies ~1.7 GB into a scratch dir beside the cache and removes it after),
 *     or a number measured before with `--full-make-seconds S`.
 * Every command is printed before it runs.
 *
 *   npm run build && node dist/scripts/bench-build.js [--runs N] [--patch FILE] [--klpforge BIN] [--full-make-seconds S | --measure-full-make]
 *
 * --klpforge times another checkout's bin/klpforge.js (before/after comparisons).
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { storedBuildIndex } from '../src/orchestrator/kbuild/build-index.js';
import { ORIGINAL_KCFLAGS, ORIGINAL_TARGETS } from '../src/orchestrator/original/cache-key.js';
import { adoptBuild } from '../src/orchestrator/original/original-cache.js';
import { rewriteCommand, shellQuote } from '../src/orchestrator/views/recompile.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Kernel {
  source: string;
  fsections: string;
  vmlinux: string;
}
interface Options {
  runs: number;
  patch: string;
  klpforge: string;
  fullMakeSeconds?: number;
  measureFullMake: boolean;
}

function options(argv: string[]): Options {
  const o: Options = {
    runs: 5,
    patch: path.join(repo, 'kernel-fixtures/examples/cmdline.patch'),
    klpforge: path.join(repo, 'bin/klpforge.js'),
    measureFullMake: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--patch') o.patch = path.resolve(argv[++i]!);
    else if (a === '--klpforge') o.klpforge = path.resolve(argv[++i]!);
    else if (a === '--full-make-seconds') o.fullMakeSeconds = Number(argv[++i]);
    else if (a === '--measure-full-make') o.measureFullMake = true;
    else throw new Error(`unknown argument ${a}: see the comment at the top of scripts/bench-build.ts`);
  }
  if (!(o.runs >= 1)) throw new Error('--runs needs a positive number');
  return o;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const spread = (xs: readonly number[]): string => `${sec(Math.min(...xs))}–${sec(Math.max(...xs))}`;
const show = (argv: readonly string[], cwd?: string): string =>
  `${cwd ? `(cd ${cwd} && ` : ''}${argv.map(shellQuote).join(' ')}${cwd ? ')' : ''}`;

/** Runs argv, printing it first; throws on failure. Returns the wall time in ms. */
async function timed(
  argv: readonly string[],
  opts: { cwd?: string; quiet?: boolean } = {},
): Promise<{ ms: number; stdout: string; stderr: string }> {
  if (!opts.quiet) console.log(`$ ${show(argv, opts.cwd)}`);
  const t0 = performance.now();
  const r = await execa(argv[0]!, argv.slice(1), { cwd: opts.cwd, reject: false, stdin: 'ignore', maxBuffer: 1 << 28 });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0)
    throw new Error(`${show(argv, opts.cwd)} failed (exit ${r.exitCode}):\n${r.stderr.split('\n').slice(-20).join('\n')}`);
  return { ms, stdout: r.stdout, stderr: r.stderr };
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const kernel = JSON.parse(execFileSync(path.join(repo, 'scripts/fetch-kernel'), ['--check'], { encoding: 'utf8' })) as Kernel;
  const config = path.join(kernel.fsections, '.config');
  const cacheDir = path.join(os.homedir(), '.cache/klpforge/bench-cache');
  await adoptBuild({ sourceDir: kernel.source, config, cacheDir, buildDir: kernel.fsections });
  const scratch = await mkdtemp(path.join(cacheDir, 'bench-'));
  console.log(
    `# ${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; scratch ${scratch}`,
  );

  const klpforge = (out: string, extra: string[] = []): string[] => [
    process.execPath,
    o.klpforge,
    'build',
    o.patch,
    '-s',
    kernel.source,
    '-c',
    config,
    '-v',
    kernel.vmlinux,
    '--cache-dir',
    cacheDir,
    '-o',
    out,
    '-j',
    '2',
    '--json',
    ...extra,
  ];
  let keptWorkDir: string | undefined;
  try {
    // Warm-up (untimed): fills the cache's index and struct sizes, and keeps its work dir for the floor's inputs.
    console.log('# warm-up run, keeping its work dir');
    const warm = await timed(klpforge(path.join(scratch, 'out-warm'), ['--skip-cleanup']));
    const kept = /work dir kept: (\S+)/.exec(warm.stderr)?.[1];
    if (!kept) throw new Error(`no work dir in klpforge's output:\n${warm.stderr}`);
    keptWorkDir = kept;

    // The floor: klpforge's own recompile command (into a scratch dir) and the same module, built directly.
    const { index } = await storedBuildIndex(kernel.fsections, path.join(scratch, 'index.json'));
    const touched = /^\+\+\+ b\/(\S+)/m.exec(await readFile(o.patch, 'utf8'))?.[1];
    const object = touched ? index.bySource.get(touched)?.[0] : undefined;
    if (!object) throw new Error(`${o.patch}: the bench needs a patch to one compiled .c file`);
    const compile = [
      'sh',
      '-c',
      rewriteCommand(index.objects.get(object)!, {
        recordedSourceDir: index.recordedSourceDir,
        viewRoot: path.join(kept, 'patched/source'),
        outDir: path.join(scratch, 'floor-obj'),
        extraIncludeDirs: [path.join(repo, 'kernel-headers')],
      }),
    ];
    await mkdir(path.dirname(path.join(scratch, 'floor-obj', object)), { recursive: true });
    // The warm run's attempt: 'likely' when it ran against the guessed cache entry, 'actual' otherwise (older klpforge: neither).
    const speculation = (JSON.parse(warm.stdout) as { original?: { speculation: string } }).original?.speculation;
    const prepared = path.join(kept, speculation === 'confirmed' ? 'likely' : speculation ? 'actual' : '', 'generate/module');
    const inputs = (await readdir(prepared)).filter((f) => f === 'Kbuild' || f === 'klpforge-hook.c' || /^klpforge-\d+\.o$/.test(f));
    const moduleDir = path.join(scratch, 'floor-module');
    const make = ['make', '-C', kernel.fsections, `M=${moduleDir}`, '-j2', 'KBUILD_MODPOST_WARN=1', 'modules'];

    // Interleaved, so a change in the machine's load falls on both.
    const builds: number[] = [];
    const stageMs = new Map<string, number[]>();
    const floorCompile: number[] = [];
    const floorModule: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      const r = await timed(klpforge(path.join(scratch, `out-${i}`)), { quiet: i > 0 });
      builds.push(r.ms);
      for (const s of (JSON.parse(r.stdout) as { stages: Array<{ stage: string; ms: number }> }).stages) {
        stageMs.set(s.stage, [...(stageMs.get(s.stage) ?? []), s.ms]);
      }
      floorCompile.push((await timed(compile, { cwd: kernel.fsections, quiet: i > 0 })).ms);
      await rm(moduleDir, { recursive: true, force: true });
      await mkdir(moduleDir);
      for (const f of inputs) await copyFile(path.join(prepared, f), path.join(moduleDir, f));
      floorModule.push((await timed(make, { cwd: kernel.fsections, quiet: i > 0 })).ms);
      console.log(`  run ${i + 1}: klpforge build ${sec(r.ms)}; floor: compile ${sec(floorCompile[i]!)} + module ${sec(floorModule[i]!)}`);
    }

    let fullMake: number | undefined = o.fullMakeSeconds !== undefined ? o.fullMakeSeconds * 1000 : undefined;
    if (o.measureFullMake) fullMake = await measureFullMake(kernel, o.patch, scratch);

    const build = median(builds);
    const floors = floorCompile.map((c, i) => c + floorModule[i]!);
    const floor = median(floors);
    console.log('\n| what | median | range |\n| --- | --- | --- |');
    console.log(`| klpforge build, warm cache (${o.runs} runs) | ${sec(build)} | ${spread(builds)} |`);
    for (const [stage, xs] of stageMs) console.log(`| … stage ${stage} | ${sec(median(xs))} | ${spread(xs)} |`);
    console.log(`| floor: recompile ${object} | ${sec(median(floorCompile))} | ${spread(floorCompile)} |`);
    console.log(`| floor: make M= modules | ${sec(median(floorModule))} | ${spread(floorModule)} |`);
    console.log(`| floor, total | ${sec(floor)} | ${spread(floors)} |`);
    const ratios = builds.map((b, i) => b / floors[i]!);
    console.log(
      `| klpforge / floor | ${(build / floor).toFixed(2)}× | per run ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}× |`,
    );
    if (fullMake !== undefined)
      console.log(`| full make after the patch (kpatch-build's way)${o.measureFullMake ? '' : ', given'} | ${sec(fullMake)} | |`);
  } finally {
    for (const dir of [scratch, ...(keptWorkDir ? [keptWorkDir] : [])]) {
      console.log(`$ rm -rf ${dir}`);
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/**
 * kpatch-build's way: apply the patch to the tree and run the kernel's make
 * again. Done on copies of the tree and of the build (cp -a keeps mtimes),
 * with the two paths rewritten in the build's text files (mtimes kept), so
 * make sees exactly the original build and rebuilds only what the patch
 * changes. A dry run first checks that: if make would compile more than a few
 * files before the patch, the copy is not faithful and nothing is timed.
 */
async function measureFullMake(kernel: Kernel, patch: string, scratch: string): Promise<number> {
  const src = path.join(scratch, 'full-src');
  const build = path.join(scratch, 'full-build');
  await timed(['cp', '-a', kernel.source, src]);
  await timed(['cp', '-a', kernel.fsections, build]);
  const rewrite =
    `grep -rlIZF -e ${shellQuote(kernel.source)} -e ${shellQuote(kernel.fsections)} . | ` +
    `while IFS= read -r -d '' f; do t=$(mktemp); cp -p "$f" "$t"; ` +
    `sed -i -e ${shellQuote(`s|${kernel.fsections}|${build}|g`)} -e ${shellQuote(`s|${kernel.source}|${src}|g`)} "$f"; touch -r "$t" "$f"; rm -f "$t"; done`;
  await timed(['bash', '-c', rewrite], { cwd: build });
  await timed(['ln', '-sfn', src, path.join(build, 'source')]);
  const make = ['make', '-C', src, `O=${build}`, `KCFLAGS=${ORIGINAL_KCFLAGS.join(' ')}`, '-j2', ...ORIGINAL_TARGETS];
  // make -n lists a few generated files as pending even in an up-to-date build (their FORCE'd
  // generators "would run"); a build make does not see as its own would list every object (~1,000).
  const dry = await timed([...make.slice(0, -ORIGINAL_TARGETS.length), '-n', ...ORIGINAL_TARGETS]);
  const pending = [
    ...new Set(
      dry.stdout
        .split('\n')
        .filter((l) => /\s-c\s.*\s-o\s/.test(l))
        .map((l) => /\s-o\s+(\S+)/.exec(l)?.[1]),
    ),
  ];
  console.log(`  dry run before the patch: ${pending.length} compile(s) listed (${pending.join(' ')})`);
  if (pending.length > 50)
    throw new Error(`the copied build is not up to date for make (${pending.length} compiles pending): not timing a full rebuild`);
  await timed(['patch', '-p1', '--batch', '-d', src, '-i', patch]);
  const r = await timed(make);
  const steps = r.stdout
    .split('\n')
    .filter((l) => /^\s+[A-Z][A-Z0-9]+(\s|$)/.test(l))
    .map((l) => l.trim().replace(/\s+/, ' '));
  console.log(`  full make: ${sec(r.ms)}; its ${steps.length} steps: ${steps.join(', ')}`);
  return r.ms;
}

await main();
