import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { readElfFile } from '../../src/elf/index.js';
import { adoptBuild } from '../../src/orchestrator/original/original-cache.js';
import { parsePatchFiles, touchedPaths } from '../../src/orchestrator/views/patch-files.js';
import { digestTree } from '../../src/orchestrator/original/tree-digest.js';
import { REPO_ROOT, type FixtureKernel } from './kernel.js';

/**
 * Helpers for the robustness tests of `klpforge build` (test/slow/build-*):
 * a private cache per test file (so work dirs can be counted exactly while
 * other suites use the shared test cache), and snapshots proving the source
 * tree and the cache were left as they were.
 */

export const CLI = path.join(REPO_ROOT, 'bin/klpforge.js');
export const FIXTURE_PATCH = path.join(REPO_ROOT, 'kernel-fixtures/examples/cmdline.patch');

/**
 * A cache dir of our own whose original build is the fixture's fsections
 * build (adopted: nothing is built). It is on the source tree's filesystem
 * (under ~/.cache/klpforge), so work dirs go to CACHE/work.
 */
export async function privateCache(kernel: FixtureKernel, label: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.homedir(), '.cache/klpforge', `test-${label}-`));
  await adoptBuild({ sourceDir: kernel.source, config: path.join(kernel.fsections, '.config'), cacheDir: dir, buildDir: kernel.fsections });
  return { dir, remove: () => rm(dir, { recursive: true, force: true, maxRetries: 5 }) };
}

export interface TreeState {
  /** digestTree: every entry's path, type, size, mtime (ns), mode. */
  digest: string;
  /** sha256 of the files the patches touch (content, which the digest does not read). */
  touched: Record<string, string>;
}

export async function treeState(root: string, touched: readonly string[]): Promise<TreeState> {
  const out: Record<string, string> = {};
  for (const f of touched)
    out[f] = createHash('sha256')
      .update(await readFile(path.join(root, f)))
      .digest('hex');
  return { digest: (await digestTree(root)).digest, touched: out };
}

/**
 * The cache as a later run reads it: every file but the scratch (work/) and
 * the logs, with a hash of its contents, plus the metadata digest of the
 * cached original build dir (the adopted fsections build), which no build may write.
 */
export async function cacheState(cacheDir: string, originalBuildDir: string): Promise<{ files: Record<string, string>; original: string }> {
  const files: Record<string, string> = {};
  for (const e of await readdir(cacheDir, { recursive: true, withFileTypes: true })) {
    const rel = path.relative(cacheDir, path.join(e.parentPath, e.name));
    if (!e.isFile() || /^(work|logs)(\/|$)/.test(rel)) continue;
    files[rel] = createHash('sha256')
      .update(await readFile(path.join(cacheDir, rel)))
      .digest('hex');
  }
  return { files, original: (await digestTree(originalBuildDir)).digest };
}

/** Work dirs present under CACHE/work. */
export async function workDirs(cacheDir: string): Promise<string[]> {
  return (await readdir(path.join(cacheDir, 'work')).catch(() => [] as string[])).sort();
}

export interface BuildRun {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface BuildArgs {
  patches?: readonly string[];
  /** -c; null: leave it out (SOURCEDIR/.config is the default). Default: the fsections build's .config. */
  config?: string | null;
  /** -v; default: the plain (booted) build's vmlinux. */
  vmlinux?: string;
  extra?: readonly string[];
}

/** The arguments of `klpforge build` against the fixture kernel. */
export function buildArgv(kernel: FixtureKernel, cacheDir: string, outDir: string, o: BuildArgs = {}): string[] {
  const config = o.config === undefined ? path.join(kernel.fsections, '.config') : o.config;
  return [
    CLI,
    'build',
    ...(o.patches ?? [FIXTURE_PATCH]),
    '-s',
    kernel.source,
    ...(config === null ? [] : ['-c', config]),
    // These runs are about the full original's cache (entries, locks, speculation): klpforge would pick the lazy one.
    '-v',
    o.vmlinux ?? kernel.vmlinux,
    '--cache-dir',
    cacheDir,
    '-o',
    outDir,
    '-j',
    '2',
    '--original',
    'full',
    ...(o.extra ?? []),
  ];
}

export function startBuild(
  kernel: FixtureKernel,
  cacheDir: string,
  outDir: string,
  o: BuildArgs = {},
): ResultPromise<{ reject: false; stdin: 'ignore'; timeout: number }> {
  return execa(process.execPath, buildArgv(kernel, cacheDir, outDir, o), { reject: false, stdin: 'ignore', timeout: 600_000 });
}

export async function finished(p: ReturnType<typeof startBuild>, t0 = performance.now()): Promise<BuildRun> {
  const r = await p;
  return { exitCode: r.exitCode, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr), ms: performance.now() - t0 };
}

export async function runBuild(kernel: FixtureKernel, cacheDir: string, outDir: string, o: BuildArgs = {}): Promise<BuildRun> {
  const t0 = performance.now();
  return finished(startBuild(kernel, cacheDir, outDir, o), t0);
}

/** The source-tree paths a patch file touches. */
export async function touchedBy(patch: string): Promise<string[]> {
  return touchedPaths(parsePatchFiles(await readFile(patch, 'utf8')));
}

/** stderr without the stage lines ("klpforge: checks: started", "klpforge: ok     checks 1.9s: …"): what the user reads as the outcome. */
export function outcomeLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !/^klpforge: (\S.*: started|(ok|FAILED|--)\s+\S)/.test(l));
}

/**
 * A copy of `vmlinux` whose banner (the linux_banner string) says `release`
 * instead of its own, same length: what a different kernel's vmlinux looks
 * like to the checks. Only the banner's bytes change.
 */
export async function vmlinuxWithRelease(vmlinux: string, release: string, out: string): Promise<string> {
  const obj = await readElfFile(vmlinux);
  const [sym] = obj.symbolsNamed('linux_banner').map((i) => obj.symbol(i));
  const sec = sym ? obj.symbolSection(sym) : undefined;
  if (!sym || !sec || sec.fileOffset === undefined) throw new Error(`${vmlinux}: no linux_banner`);
  const at = Number(sec.fileOffset + (sym.value - sec.addr));
  await copyFile(vmlinux, out);
  const f = await open(out, 'r+');
  try {
    const head = Buffer.alloc(64);
    await f.read(head, 0, 64, at);
    const m = /^Linux version (\S+) /.exec(head.toString('latin1'));
    if (!m || m[1]!.length !== release.length)
      throw new Error(`banner ${JSON.stringify(head.toString('latin1'))}: cannot put ${release} in place of its release`);
    await f.write(Buffer.from(release, 'latin1'), 0, release.length, at + 'Linux version '.length);
  } finally {
    await f.close();
  }
  return out;
}
