import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileDigest, type InputsDigest } from './inputs.js';
import type { Pair } from './pairs.js';
import { type PairResult, type PairStatus, pairDir } from './results.js';

/**
 * One pair, built by a `klpforge build --json` process of its own: a crash,
 * an out-of-memory kill or a stuck guest costs that pair, not the batch, and
 * every build keeps the interrupt handling, work-dir cleanup and cache locks
 * it has on its own. Pairs share through the cache on disk: the original
 * build or prepared tree per kernel, its stored build index and struct
 * sizes, the distribution kernel's packages; its locks make concurrent jobs
 * wait for the one building rather than build it twice.
 */

export interface JobOptions {
  /** How to start klpforge itself: [node, bin/klpforge.js]. */
  readonly klpforge: readonly string[];
  readonly outDir: string;
  readonly cacheDir: string;
  /** Compiles per job (build -j). */
  readonly buildJobs: number;
  readonly verify: boolean;
  readonly runner?: string;
  readonly image?: string;
  readonly rootfs?: string;
  /** Told when the build process starts and ends (to stop it on an interrupt). */
  readonly onSpawn?: (pid: number, done: Promise<void>) => void;
}

/** `build`'s own environment variable: stop when this process (the batch) is gone, even after kill -9. */
export const BATCH_PARENT_VAR = 'KLPFORGE_BATCH_PARENT';

/** The `klpforge build` command line of a pair. */
export function buildArgv(p: Pair, o: JobOptions, output: string): string[] {
  const k = p.kernel;
  const kernelArgs =
    k.kind === 'distro'
      ? ['--kernel', k.kernel]
      : [
          '-s',
          k.source,
          '-c',
          k.config,
          '-v',
          k.vmlinux,
          ...(k.image ? ['--kernel', k.image] : []),
          ...(k.original ? ['--original', k.original] : []),
        ];
  return [
    'build',
    ...p.patchset.patches,
    ...kernelArgs,
    '-n',
    p.patchset.name,
    '-o',
    output,
    '-j',
    String(o.buildJobs),
    '--cache-dir',
    o.cacheDir,
    ...(o.runner ? ['--runner', o.runner] : []),
    ...(o.image ? ['--image', o.image] : []),
    ...(o.rootfs ? ['--rootfs', o.rootfs] : []),
    '--json',
    ...(o.verify ? ['--verify', ...p.patchset.checks.flatMap((c) => ['--check', c.text])] : []),
  ];
}

/** What `build --json` prints, as far as a batch reads it. */
interface BuildJson {
  ok?: boolean;
  module?: string;
  verified?: boolean;
  verifyFailures?: string[];
  stages?: Array<{ stage: string; ms: number; state: string; detail?: string }>;
  error?: { code: string; message: string; exitCode: number; reasons?: Array<{ code: string; object?: string; message: string }> };
}

/**
 * Runs the pair; the result, or undefined when the build was interrupted
 * (nothing is recorded: the next run builds it again).
 */
export async function runJob(p: Pair, inputs: InputsDigest, o: JobOptions): Promise<PairResult | undefined> {
  const dir = pairDir(o.outDir, p.id);
  await mkdir(dir, { recursive: true });
  const log = createWriteStream(path.join(dir, 'build.log'));
  const started = Date.now();
  const [command, ...prefix] = o.klpforge;
  const child = spawn(command!, [...prefix, ...buildArgv(p, o, dir)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own: a terminal's Ctrl-C reaches the batch alone, which passes it on once (see BatchControl).
    detached: true,
    env: { ...process.env, [BATCH_PARENT_VAR]: String(process.pid) },
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.pipe(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  const spawnFailed = new Promise<Error>((resolve) => child.on('error', resolve));
  if (child.pid !== undefined)
    o.onSpawn?.(
      child.pid,
      exited.then(() => undefined),
    );
  const end = await Promise.race([exited, spawnFailed]);
  await new Promise<void>((resolve) => log.end(resolve));
  const seconds = (Date.now() - started) / 1000;
  const base = {
    pair: p.id,
    kernel: p.kernel.name,
    patchset: p.patchset.name,
    inputs,
    verify: o.verify,
    seconds,
    finishedAt: new Date().toISOString(),
  };
  if (end instanceof Error)
    return {
      ...base,
      status: 'failed',
      exitCode: -1,
      code: 'BATCH_SPAWN',
      message: `cannot start klpforge: ${end.message}`,
      reasons: [],
      stages: [],
    };
  if (end.signal !== null || end.code === 130) return undefined;
  const json = parseJson(Buffer.concat(chunks).toString('utf8'));
  const stages = (json?.stages ?? []).map((s) => ({ stage: s.stage, seconds: Math.round(s.ms) / 1000, state: s.state }));
  const exitCode = end.code ?? -1;
  if (json?.error?.code === 'BUILD_INTERRUPTED') return undefined;
  if (exitCode === 0 && json?.module) {
    const module = json.module;
    const [sha256, st] = await Promise.all([fileDigest(module), stat(module)]);
    const status: PairStatus = json.verified === true ? 'verified' : 'built';
    return { ...base, status, exitCode, reasons: [], stages, module: { path: path.relative(o.outDir, module), sha256, size: st.size } };
  }
  if (json?.verified === false)
    return {
      ...base,
      status: 'failed',
      exitCode,
      code: 'VERIFY_FAILED',
      message: `built, but klpforge verify failed: ${(json.verifyFailures ?? []).join('; ') || 'see build.log'}`,
      reasons: [],
      stages,
    };
  const error = json?.error;
  const status: PairStatus = exitCode === 2 || exitCode === 3 ? 'refused' : 'failed';
  return {
    ...base,
    status,
    exitCode,
    code: error?.code ?? (exitCode === 70 ? 'INTERNAL' : 'BUILD_FAILED'),
    message: firstLine(error?.message) ?? `klpforge build exited with ${exitCode} and no report: see ${path.join(dir, 'build.log')}`,
    // A refusal's message lists its reasons again, line by line: they are in `reasons` already.
    ...(rest(error?.message) && !error?.reasons?.length ? { details: rest(error?.message) } : {}),
    reasons: (error?.reasons ?? []).map((r) => ({ code: r.code, ...(r.object ? { object: r.object } : {}), message: r.message })),
    stages,
  };
}

function parseJson(text: string): BuildJson | undefined {
  try {
    return JSON.parse(text) as BuildJson;
  } catch {
    return undefined;
  }
}

const firstLine = (s: string | undefined): string | undefined => s?.split('\n')[0];

const rest = (s: string | undefined): string | undefined => s?.split('\n').slice(1).join('\n').trim() || undefined;
