import os from 'node:os';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import {
  buildCase,
  checkFile,
  explainRun as explain,
  guestModules,
  type IntegrationCase,
  integrationCases,
  type PlainKernel,
  verifyCase,
} from '../helpers/integration.js';
import { s390xKernel } from '../helpers/kernel-s390x.js';

/**
 * The cases marked for s390x (case.json `machines`) on the s390x fixture
 * kernel, cross-built here (scripts/fetch-kernel --arch s390x) and booted in
 * qemu-system-s390x under TCG. The machine comes from the kernel's .config:
 * the same `klpforge build` command line as on x86_64, the lazy original
 * prepared from the plain build with s390x-linux-gnu-gcc.
 */
const cases = await integrationCases('s390x');
let kernel: PlainKernel;
let work: DirectoryResult;
const cacheDir = path.join(os.homedir(), '.cache/klpforge/test-cache');

beforeAll(async () => {
  const k = await s390xKernel();
  kernel = { source: k.source, config: path.join(k.plain, '.config'), plain: k.plain, vmlinux: k.vmlinux, bzImage: k.bzImage };
  work = await tmpDir({ unsafeCleanup: true });
}, 3_600_000);
afterAll(async () => {
  await work?.cleanup();
});

async function runPassingCase(c: IntegrationCase): Promise<void> {
  const out = path.join(work.path, c.name);
  const earlier = (c.sequence ?? []).filter((s) => s.patch !== 'fix.patch');
  const extra: string[] = [];
  for (const s of earlier) {
    const r = await buildCase(kernel, cacheDir, [path.join(c.dir, s.patch)], s.name!, path.join(out, 'earlier'));
    if (r.exitCode !== 0) throw new Error(explain(`build of ${s.patch}`, r));
    extra.push(path.join(out, 'earlier', s.module ?? `livepatch-${s.name}.ko`));
  }
  const built = await buildCase(kernel, cacheDir, [path.join(c.dir, 'fix.patch')], c.name, out, ['--json']);
  if (built.exitCode !== 0) throw new Error(explain('klpforge build', built));
  const report = JSON.parse(built.stdout) as { module: string; stages: Array<{ stage: string }>; original: { mode: string } };
  expect(report.stages.map((s) => s.stage)).toEqual(['preflight', 'original', 'originals', 'patched', 'match', 'diff', 'generate']);
  const modules = await guestModules(kernel, path.join(out, 'modules'), !!c.modules, extra);
  const v = await verifyCase(kernel, report.module, [checkFile(c)], modules);
  if (!v.ok) throw new Error(explain('klpforge verify', v.run));
}

describe('s390x livepatch cases: klpforge build for the s390x kernel, then klpforge verify boots it in qemu-system-s390x', () => {
  test('there are s390x cases of each kind the issue names', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });
  for (const c of cases.filter((x) => x.expect === 'pass')) {
    test(`${c.name}: ${c.description}`, () => runPassingCase(c), 1_200_000);
  }
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
});
