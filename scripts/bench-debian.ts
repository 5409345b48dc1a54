/**
 * `klpforge build --kernel debian:RELEASE` of a one-file patch on Debian's
 * stock kernel: cold (an empty cache dir but for the downloaded packages)
 * and warm (the same cache, again), each stage's time from the build's own
 * JSON report, next to the floor: compiling the patched file in the prepared
 * tree plus `make M=` of the module. Then an estimate of a full build of
 * this config: the configured objects counted by walking kbuild's
 * directories (the same query the lazy original uses), times the mean
 * compile time of a sample of them, over the cores.
 *
 *   npm run build && node dist/scripts/bench-debian.js [--release R] [--patch FILE] [--sample N]
 *
 * Downloads are timed apart: they go to CACHE/bench-downloads once, and each
 * cold run gets hard links to them.
 */
import { link, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { aptPackage, downloadPackage } from '../src/orchestrator/acquire/apt.js';
import { newestDebianRelease } from '../src/orchestrator/acquire/debian-kernel.js';
import { configuredObjects } from '../src/orchestrator/kbuild/include-scan.js';
import { HostRunner } from '../src/orchestrator/runners/runner.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cache = process.env.KLPFORGE_CACHE ?? path.join(os.homedir(), '.cache/klpforge');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

interface Report {
  ok: boolean;
  stages: Array<{ stage: string; ms: number }>;
  original: { buildDir: string };
  error?: unknown;
}

async function build(release: string, patch: string, cacheDir: string, out: string): Promise<{ wall: number; report: Report }> {
  const t0 = performance.now();
  const r = await execa(
    process.execPath,
    [
      path.join(repo, 'bin/klpforge.js'),
      'build',
      patch,
      '--kernel',
      `debian:${release}`,
      '--cache-dir',
      cacheDir,
      '-o',
      out,
      '-n',
      'bench',
      '-j',
      '2',
      '--json',
    ],
    { reject: false },
  );
  const wall = performance.now() - t0;
  const report = JSON.parse(r.stdout) as Report;
  if (r.exitCode !== 0) throw new Error(`klpforge build failed: ${r.stdout}\n${r.stderr}`);
  return { wall, report };
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const stages = (r: Report): string => r.stages.map((x) => `${x.stage} ${s(x.ms)}`).join(', ');

async function main(): Promise<void> {
  const release = arg('--release', '') || (await newestDebianRelease('6.1', 'amd64'));
  if (!release) throw new Error('no linux-image-6.1.0-*-amd64 known to apt');
  const patch = path.resolve(arg('--patch', path.join(repo, 'kernel-fixtures/integration/01-cmdline-extra-word/fix.patch')));
  const image = (await aptPackage(`linux-image-${release}`)) ?? (await aptPackage(`linux-image-${release}-unsigned`));
  const version = image!.version;
  const packages = await Promise.all(
    [image!.name, `linux-image-${release}-dbg`, `linux-headers-${release}`, 'linux-source-6.1'].map((n) => aptPackage(n, version)),
  );

  const downloads = path.join(cache, 'bench-downloads');
  await mkdir(downloads, { recursive: true });
  const td = performance.now();
  for (const p of packages) await downloadPackage(p!, downloads);
  console.log(`downloads (${packages.map((p) => p!.name).join(', ')}): ${s(performance.now() - td)} (0 if they were there)`);

  const cold = await mkdtemp(path.join(cache, 'bench-cold-'));
  const out = await mkdtemp(path.join(os.tmpdir(), 'klpforge-bench-'));
  try {
    await mkdir(path.join(cold, 'debian', 'downloads'), { recursive: true });
    for (const f of await readdir(downloads)) await link(path.join(downloads, f), path.join(cold, 'debian', 'downloads', f));
    console.log(`release ${release} (${version}), patch ${path.relative(repo, patch)}`);
    const c = await build(release, patch, cold, out);
    console.log(`cold: ${s(c.wall)} wall; ${stages(c.report)}`);
    const w = [];
    for (let i = 0; i < 3; i++) w.push(await build(release, patch, cold, out));
    w.sort((a, b) => a.wall - b.wall);
    console.log(`warm (median of 3): ${s(w[1]!.wall)} wall; ${stages(w[1]!.report)}`);

    // The floor: the patched file's compile in the prepared tree, and a module build against it.
    const tree = c.report.original.buildDir;
    const kernel = JSON.parse(
      await import('node:fs/promises').then((fs) => fs.readFile(path.join(cold, 'debian', release, 'kernel.json'), 'utf8')),
    ) as { sourceDir: string; cc: string };
    const object = 'fs/proc/cmdline.o';
    await rm(path.join(tree, object), { force: true });
    const make = ['-C', kernel.sourceDir, `O=${tree}`, `CC=${kernel.cc}`, `KERNELRELEASE=${release}`];
    const t1 = performance.now();
    await execa('make', [...make, 'KCFLAGS=-ffunction-sections -fdata-sections', object]);
    const compile = performance.now() - t1;
    const mod = await mkdtemp(path.join(os.tmpdir(), 'klpforge-floor-'));
    await execa('sh', [
      '-c',
      `printf 'obj-m := floor.o\\n' > ${mod}/Kbuild; printf '#include <linux/module.h>\\nMODULE_LICENSE("GPL");\\n' > ${mod}/floor.c`,
    ]);
    const t2 = performance.now();
    await execa('make', ['-C', tree, `M=${mod}`, `CC=${kernel.cc}`, `KERNELRELEASE=${release}`, 'modules']);
    const module = performance.now() - t2;
    await rm(mod, { recursive: true, force: true });
    console.log(
      `floor: ${s(compile + module)} (compile ${object} ${s(compile)} + module ${s(module)}); warm is ${(w[1]!.wall / (compile + module)).toFixed(2)}x the floor`,
    );

    // A full build, estimated: every configured object, at the mean compile time of a sample.
    const runner = new HostRunner();
    const tw = performance.now();
    // The lazy original's own walk of kbuild's directory lists (kbuild/include-scan.ts).
    const { objects } = await configuredObjects({
      buildDir: tree,
      sourceDir: kernel.sourceDir,
      runner,
      makeVars: [`CC=${kernel.cc}`],
      arch: 'x86',
      jobs: 2,
    });
    const unique = [...objects.keys()];
    console.log(`configured objects: ${unique.length} (kbuild's directory lists walked in ${s(performance.now() - tw)})`);
    const sampleSize = Number(arg('--sample', '24'));
    // Every k-th object, and none the cold and warm runs compiled already.
    const sample = unique.filter((_, i) => i % Math.max(1, Math.floor(unique.length / sampleSize)) === 0).slice(0, sampleSize);
    await Promise.all(sample.map((o) => rm(path.join(tree, o), { force: true })));
    const ts = performance.now();
    const r = await execa('make', [...make, '-k', '-j2', 'KCFLAGS=-ffunction-sections -fdata-sections', ...sample], { reject: false });
    const wall = performance.now() - ts;
    // Objects kbuild cannot make alone (generated sources, parts of composites) fail fast: count the ones made.
    const made = (
      await Promise.all(
        sample.map((o) =>
          import('node:fs/promises').then((fs) =>
            fs.stat(path.join(tree, o)).then(
              () => 1,
              () => 0,
            ),
          ),
        ),
      )
    ).reduce<number>((a, b) => a + b, 0);
    const perObject = wall / Math.max(1, made); // at -j2: wall time per object on the 2 cores
    console.log(
      `sample: ${made} of ${sample.length} objects made at -j2 in ${s(wall)} (make exit ${r.exitCode}): ${s(perObject)} of wall time per object on 2 cores`,
    );
    console.log(
      `full build estimate: ${unique.length} objects x ${s(perObject)} = ${((unique.length * perObject) / 3_600_000).toFixed(1)} h on 2 cores, compiles only (links, BTF and modpost on top)`,
    );
  } finally {
    await rm(cold, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  }
}

await main();
