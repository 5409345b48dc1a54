import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { adoptBuild } from '../../src/orchestrator/original/original-cache.js';
import { fixtureKernel, REPO_ROOT, type FixtureKernel } from './kernel.js';

export const INTEGRATION_DIR = path.join(REPO_ROOT, 'kernel-fixtures/integration');
const CLI = path.join(REPO_ROOT, 'bin/klpforge.js');

/** kernel-fixtures/integration/NN-name/case.json (see the README there). */
export interface IntegrationCase {
  dir: string;
  name: string;
  description: string;
  expect: 'pass' | 'refused';
  reason?: string;
  exitCode?: number;
  modules?: boolean;
  /** `own`: in the combined module, this case's check needs a boot of its own. */
  combinedBoot?: 'own';
  sequence?: Array<{ patch: string; name?: string; module?: string; guestPath?: string }>;
  /** Machines whose fixture kernel runs the case (uname -m names); absent: x86_64 only. */
  machines?: string[];
}

/** The cases of one machine's fixture kernel (README: `machines`). */
export async function integrationCases(machine = 'x86_64'): Promise<IntegrationCase[]> {
  return (await allIntegrationCases()).filter((c) => (c.machines ?? ['x86_64']).includes(machine));
}

async function allIntegrationCases(): Promise<IntegrationCase[]> {
  const dirs = (await readdir(INTEGRATION_DIR, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return Promise.all(
    dirs.map(async (name) => {
      const dir = path.join(INTEGRATION_DIR, name);
      return { dir, name, ...JSON.parse(await readFile(path.join(dir, 'case.json'), 'utf8')) } as IntegrationCase;
    }),
  );
}

/** A klpforge cache whose original build is the fixture's function-sections build: no third kernel build. */
export async function fixtureCache(kernel: FixtureKernel): Promise<string> {
  const cacheDir = path.join(os.homedir(), '.cache/klpforge/test-cache');
  await adoptBuild({ sourceDir: kernel.source, config: path.join(kernel.fsections, '.config'), cacheDir, buildDir: kernel.fsections });
  return cacheDir;
}

/**
 * What every integration test file sets up: the fixture kernel, the shared
 * test cache (adopted once per file) and a scratch dir removed afterwards.
 * Call at a test file's top level; read cacheDir and work inside tests.
 */
export function integrationFixture(): { kernel: FixtureKernel; readonly cacheDir: string; readonly work: string } {
  const kernel = fixtureKernel();
  let cacheDir: string | undefined;
  let work: DirectoryResult | undefined;
  beforeAll(async () => {
    cacheDir = await fixtureCache(kernel);
    work = await tmpDir({ unsafeCleanup: true });
  }, 300_000);
  afterAll(async () => {
    await work?.cleanup();
  });
  return {
    kernel,
    get cacheDir() {
      if (cacheDir === undefined) throw new Error('integration fixture not set up yet');
      return cacheDir;
    },
    get work() {
      if (work === undefined) throw new Error('integration fixture not set up yet');
      return work.path;
    },
  };
}

/** A failed klpforge run, for a test's error: exit code and the ends of both streams. */
export function explainRun(what: string, r: { exitCode: number; stdout: string; stderr: string }): string {
  return `${what} exited ${r.exitCode}\n--- stderr\n${r.stderr.slice(-4000)}\n--- stdout\n${r.stdout.slice(-4000)}`;
}

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function klpforge(args: readonly string[], timeoutMs = 600_000): Promise<CliRun> {
  const r = await execa(process.execPath, [CLI, ...args], { reject: false, timeout: timeoutMs, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Another machine's fixture kernel, built plain only (scripts/fetch-kernel
 * --arch): its plain build is both the running kernel and, through its
 * Module.symvers and modules.order, what the lazy original is prepared from.
 */
export interface PlainKernel {
  source: string;
  /** The plain build's .config. */
  config: string;
  plain: string;
  vmlinux: string;
  bzImage: string;
}

/** `klpforge build` of patches against a fixture kernel (the booted plain build is the running kernel). */
export async function buildCase(
  kernel: FixtureKernel | PlainKernel,
  cacheDir: string,
  patches: readonly string[],
  name: string,
  outDir: string,
  extra: readonly string[] = [],
): Promise<CliRun> {
  return klpforge([
    'build',
    ...patches,
    '-s',
    kernel.source,
    '-c',
    'config' in kernel ? kernel.config : path.join(kernel.fsections, '.config'),
    '-v',
    kernel.vmlinux,
    '--cache-dir',
    cacheDir,
    '-o',
    outDir,
    '-n',
    name,
    '-j',
    '2',
    ...extra,
  ]);
}

export interface VerifyOutcome {
  ok: boolean;
  run: CliRun;
  report: { ok: boolean; steps?: Array<{ id: string; status?: string; ok?: boolean; detail?: string }> } | undefined;
}

/** `klpforge verify` of a module with check script files (--check-file); `modulesDir` becomes /modules in the guest. */
export async function verifyCase(
  kernel: FixtureKernel | PlainKernel,
  ko: string,
  checkFiles: readonly string[],
  modulesDir?: string,
): Promise<VerifyOutcome> {
  const run = await klpforge([
    'verify',
    ko,
    '--kernel',
    kernel.bzImage,
    ...checkFiles.flatMap((c) => ['--check-file', c]),
    ...(modulesDir ? ['--modules', modulesDir] : []),
    '--json',
    '--timeout',
    '180',
  ]);
  let report: VerifyOutcome['report'];
  try {
    report = JSON.parse(run.stdout) as VerifyOutcome['report'];
  } catch {
    report = undefined;
  }
  return { ok: run.exitCode === 0 && report?.ok === true, run, report };
}

/** A /modules tree for the guest: the plain build's modules (when asked) plus extra files at its root. */
export async function guestModules(
  kernel: FixtureKernel | PlainKernel,
  dir: string,
  withKernelModules: boolean,
  extra: readonly string[],
): Promise<string | undefined> {
  if (!withKernelModules && extra.length === 0) return undefined;
  await mkdir(dir, { recursive: true });
  if (withKernelModules) {
    const order = await readFile(path.join(kernel.plain, 'modules.order'), 'utf8');
    for (const ko of order.split('\n').filter(Boolean)) {
      await mkdir(path.join(dir, path.dirname(ko)), { recursive: true });
      await copyFile(path.join(kernel.plain, ko), path.join(dir, ko));
    }
  }
  for (const f of extra) await copyFile(f, path.join(dir, path.basename(f)));
  return dir;
}

export function checkFile(c: IntegrationCase): string {
  return path.join(c.dir, 'check.sh');
}
