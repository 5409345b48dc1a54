/**
 * `klpforge batch` of N pairs against the same N pairs as sequential
 * `klpforge build` runs: wall time and peak memory (the resident memory of
 * the whole process tree, klpforge, make, gcc and all, sampled every 100 ms).
 * Pairs: four patch sets of the integration suite that build, times the
 * fixture kernel and (unless --no-debian) Debian's newest stock kernel. The
 * cache is warmed first (originals prepared), so what is measured is the
 * nightly case: kernels known, patches new (--force).
 *
 *   npm run build && node dist/scripts/bench-batch.js [--no-debian] [--jobs 1,2]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { newestDebianRelease } from '../src/orchestrator/acquire/debian-kernel.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repo, 'bin/klpforge.js');
const cache = process.env.KLPFORGE_CACHE ?? path.join(os.homedir(), '.cache/klpforge');
const CASES = ['01-cmdline-extra-word', '03-new-function', '04-static-local-counter', '10-syscall-uname'];

interface Fixture {
  source: string;
  fsections: string;
  vmlinux: string;
}

/** Sum of the resident memory of `root` and every descendant, in bytes. */
async function treeRss(root: number): Promise<number> {
  const parent = new Map<number, number>();
  const rss = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.length < 22) continue;
    parent.set(Number(name), Number(fields[1]));
    rss.set(Number(name), Number(fields[21]) * 4096);
  }
  let total = 0;
  for (const [pid, bytes] of rss) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p))
      if (p === root) {
        total += bytes;
        break;
      }
  }
  return total;
}

/** Runs a command, sampling its tree's memory; wall seconds and peak MiB. */
async function measured(argv: string[]): Promise<{ seconds: number; peakMb: number; code: number | null }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'ignore'] });
  let peak = 0;
  const timer = setInterval(() => {
    void treeRss(child.pid!).then((b) => (peak = Math.max(peak, b)));
  }, 100);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(timer);
  return { seconds: (performance.now() - t0) / 1000, peakMb: peak / 2 ** 20, code };
}

async function main(): Promise<void> {
  const fx = JSON.parse((await execa(path.join(repo, 'scripts/fetch-kernel'), ['--check'])).stdout) as Fixture;
  const release = process.argv.includes('--no-debian') ? undefined : await newestDebianRelease('6.1', 'amd64');
  const jobsList = (process.argv[process.argv.indexOf('--jobs') + 1] ?? '1,2').split(',').map(Number);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klpforge-bench-batch-'));
  const config = path.join(fx.fsections, '.config');
  type Kernel = { name: string; source: string; config: string; vmlinux: string } | { name: string; kernel: string };
  const kernels: Kernel[] = [
    { name: 'fixture', source: fx.source, config, vmlinux: fx.vmlinux },
    ...(release ? [{ name: 'debian', kernel: `debian:${release}` }] : []),
  ];
  const patch = (c: string) => path.join(repo, 'kernel-fixtures/integration', c, 'fix.patch');
  const manifest = path.join(dir, 'manifest.json');
  await writeFile(manifest, JSON.stringify({ kernels, patchsets: CASES.map((c) => ({ name: c.slice(3), patches: [patch(c)] })) }));
  const pairs = kernels.length * CASES.length;
  const batchArgv = (jobs: number) => [
    cli,
    'batch',
    manifest,
    '-o',
    path.join(dir, 'out'),
    '-j',
    String(jobs),
    '--cache-dir',
    cache,
    '--force',
  ];
  console.error(`warming the cache (${kernels.map((k) => k.name).join(', ')})...`);
  await measured(batchArgv(1));
  const rows: string[] = [];
  for (const jobs of jobsList) {
    const r = await measured(batchArgv(jobs));
    rows.push(`| \`batch -j ${jobs}\` | ${pairs} | ${r.seconds.toFixed(1)} s | ${r.peakMb.toFixed(0)} MiB |`);
  }
  let seconds = 0;
  let peak = 0;
  for (const k of kernels)
    for (const c of CASES) {
      const where = 'kernel' in k ? ['--kernel', k.kernel] : ['-s', k.source, '-c', k.config, '-v', k.vmlinux];
      const r = await measured([
        cli,
        'build',
        patch(c),
        ...where,
        '--cache-dir',
        cache,
        '-o',
        path.join(dir, 'seq'),
        '-n',
        c.slice(3),
        '-j',
        '2',
      ]);
      seconds += r.seconds;
      peak = Math.max(peak, r.peakMb);
    }
  rows.push(`| ${pairs} x \`build -j 2\`, one after another | ${pairs} | ${seconds.toFixed(1)} s | ${peak.toFixed(0)} MiB |`);
  console.log(`| run | pairs | wall | peak memory (process tree) |\n|---|---|---|---|\n${rows.join('\n')}`);
  await rm(dir, { recursive: true, force: true });
}

await main();
