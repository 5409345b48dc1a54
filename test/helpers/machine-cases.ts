import os from 'node:os';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import {
  buildCase,
  checkFile,
  explainRun as explain,
  guestModules,
  type IntegrationCase,
  type PlainKernel,
  verifyCase,
} from './integration.js';

/**
 * The integration cases whose case.json `machines` names a cross-built
 * fixture machine, each built with the same `klpforge build` command line
 * as on x86_64 (the machine comes from the kernel's .config) and booted by
 * `klpforge verify` in that machine's QEMU under TCG. Call at a test file's
 * top level, after awaiting the case list.
 */
export function describeMachineCases(
  machine: string,
  cases: readonly IntegrationCase[],
  fixture: () => Promise<PlainKernel>,
  minimumCases: number,
  /** A passing case also built on the full original: a whole kernel of that machine, built with its livepatch flags. */
  fullOriginalCase?: string,
): void {
  let kernel: PlainKernel;
  let work: DirectoryResult;
  const cacheDir = path.join(os.homedir(), '.cache/klpforge/test-cache');

  beforeAll(async () => {
    kernel = await fixture();
    work = await tmpDir({ unsafeCleanup: true });
  }, 3_600_000);
  afterAll(async () => {
    await work?.cleanup();
  });

  async function runPassingCase(c: IntegrationCase, original: 'lazy' | 'full' = 'lazy'): Promise<void> {
    const out = path.join(work.path, `${c.name}-${original}`);
    const earlier = (c.sequence ?? []).filter((s) => s.patch !== 'fix.patch');
    const extra: string[] = [];
    for (const s of earlier) {
      const r = await buildCase(kernel, cacheDir, [path.join(c.dir, s.patch)], s.name!, path.join(out, 'earlier'));
      if (r.exitCode !== 0) throw new Error(explain(`build of ${s.patch}`, r));
      extra.push(path.join(out, 'earlier', s.module ?? `livepatch-${s.name}.ko`));
    }
    const built = await buildCase(kernel, cacheDir, [path.join(c.dir, 'fix.patch')], c.name, out, [
      '--json',
      ...(original === 'full' ? ['--original', 'full'] : []),
    ]);
    if (built.exitCode !== 0) throw new Error(explain('klpforge build', built));
    const report = JSON.parse(built.stdout) as { module: string; stages: Array<{ stage: string }>; original: { mode: string } };
    expect(report.original.mode).toBe(original);
    expect(report.stages.map((s) => s.stage)).toEqual(
      original === 'lazy'
        ? ['preflight', 'original', 'originals', 'patched', 'match', 'diff', 'generate']
        : ['preflight', 'original', 'patched', 'match', 'diff', 'generate'],
    );
    const modules = await guestModules(kernel, path.join(out, 'modules'), !!c.modules, extra);
    const v = await verifyCase(kernel, report.module, [checkFile(c)], modules);
    if (!v.ok) throw new Error(explain('klpforge verify', v.run));
  }

  test(`there are ${machine} cases of each kind the issue names`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(minimumCases);
  });
  for (const c of cases.filter((x) => x.expect === 'pass')) {
    test(`${c.name}: ${c.description}`, () => runPassingCase(c), 1_200_000);
  }
  const full = cases.find((c) => c.name === fullOriginalCase);
  if (fullOriginalCase !== undefined)
    test(`${fullOriginalCase} on the full original: a whole ${machine} kernel built with the machine's make variables and livepatch flags`, () => {
      if (full === undefined) throw new Error(`no ${machine} case ${fullOriginalCase}`);
      return runPassingCase(full, 'full');
    }, 1_800_000);
  for (const c of cases.filter((x) => x.expect === 'refused')) {
    test(`${c.name}: refused with ${c.reason}`, async () => {
      const out = path.join(work.path, c.name);
      const r = await buildCase(kernel, cacheDir, [path.join(c.dir, 'fix.patch')], c.name, out, ['--json']);
      expect(r.exitCode).toBe(c.exitCode ?? 2);
      const report = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; reasons?: Array<{ code: string }> } };
      const codes = [report.error.code, ...(report.error.reasons ?? []).map((x) => x.code)];
      expect(codes).toContain(c.reason === 'NO_CHANGE' ? 'BUILD_NO_CHANGE' : c.reason);
    }, 1_200_000);
  }
}

/** The PlainKernel a cross fixture's JSON (scripts/fetch-kernel --arch ARCH --json) describes. */
export function plainKernelOf(k: { source: string; plain: string; vmlinux: string; bzImage: string }): PlainKernel {
  return { source: k.source, config: path.join(k.plain, '.config'), plain: k.plain, vmlinux: k.vmlinux, bzImage: k.bzImage };
}
