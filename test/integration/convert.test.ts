import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { readElfFile, SHF, SHN } from '../../src/elf/index.js';
import { buildConvertCase, CONVERT_DIR, convertModule, refusalReasons, type ConvertReport } from '../helpers/convert.js';
import { explainRun, verifyCase, type CliRun } from '../helpers/integration.js';
import { fixtureKernel } from '../helpers/kernel.js';

/**
 * `klpforge convert` on hand-written livepatch modules (issue 16): the
 * kernel's own sample and kernel-fixtures/convert, built with `make M=`
 * against the fixture kernel, converted against its vmlinux, and the
 * converted ones booted with `klpforge verify`.
 */
const kernel = fixtureKernel();
let work: DirectoryResult | undefined;
beforeAll(async () => {
  work = await tmpDir({ unsafeCleanup: true });
});
afterAll(async () => {
  await work?.cleanup();
});

function workDir(): string {
  if (work === undefined) throw new Error('work dir not set up yet');
  return work.path;
}

/** Each module is built once, when a test first needs it, so any one test can run alone (-t). */
const modules = new Map<string, Promise<string>>();
function fixtureModule(fixture: string, variant?: { name: string; kcflags: string }): Promise<string> {
  const key = variant?.name ?? fixture;
  let ko = modules.get(key);
  if (ko === undefined) {
    ko = buildConvertCase(kernel, fixture, path.join(workDir(), 'build', key), variant?.kcflags);
    modules.set(key, ko);
  }
  return ko;
}

/** Where a conversion writes: a directory of its own, the file named as the input (verify takes NAME.ko). */
async function outputFor(run: string, ko: string): Promise<string> {
  const dir = path.join(workDir(), 'out', run);
  await mkdir(dir, { recursive: true });
  return path.join(dir, path.basename(ko));
}

/** The report of a conversion that must succeed; the run's output otherwise. */
function converted({ run, report }: { run: CliRun; report?: ConvertReport }): ConvertReport {
  if (run.exitCode !== 0 || report?.ok !== true) throw new Error(explainRun('klpforge convert', run));
  return report;
}

describe('klpforge convert: hand-written livepatch modules', () => {
  test("the kernel's sample livepatch uses only exports: nothing to convert, and it still loads", async () => {
    const out = await outputFor('sample', kernel.samplePatch);
    const r = converted(await convertModule(kernel, kernel.samplePatch, out));
    expect(r.converted).toEqual([]);
    expect(r.linked).toEqual(expect.arrayContaining(['klp_enable_patch', 'seq_printf']));
    expect(r.replaced).toEqual([{ objname: 'vmlinux', name: 'cmdline_proc_show', sympos: 0 }]);

    const check = path.join(workDir(), 'sample-check.sh');
    await writeFile(check, "cat /proc/cmdline\ngrep -q '^this has been live patched$' /proc/cmdline\n");
    const v = await verifyCase(kernel, out, [check]);
    if (!v.ok) throw new Error(explainRun('klpforge verify', v.run));
  }, 600_000);

  test('static-calls: a static function at the annotated sympos and a unique static variable become klp relocations, and work', async () => {
    const ko = await fixtureModule('static-calls');
    const out = await outputFor('static-calls', ko);
    const r = converted(await convertModule(kernel, ko, out));
    // print_cpu: KLPFORGE_SYMPOS(print_cpu, vmlinux, 2), timer_list.c's; the others are the only ones of their name.
    expect([...(r.converted ?? [])].sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      expect.objectContaining({ name: 'linux_proc_banner', objname: 'vmlinux', sympos: 0 }),
      expect.objectContaining({ name: 'pipe_max_size', objname: 'vmlinux', sympos: 0 }),
      expect.objectContaining({ name: 'print_cpu', objname: 'vmlinux', sympos: 2 }),
    ]);
    expect(r.linked).toEqual(expect.arrayContaining(['klp_enable_patch', 'seq_printf', 'ktime_get']));
    expect(r.replaced).toEqual([{ objname: 'vmlinux', name: 'version_proc_show', sympos: 0 }]);

    // What the livepatch core reads: SHN_LIVEPATCH symbols, and their relocations in a .klp.rela section.
    const elf = await readElfFile(out);
    const klpSymbols = elf.symbols.filter((s) => s.name.startsWith('.klp.sym.'));
    expect(klpSymbols.map((s) => s.name).sort()).toEqual([
      '.klp.sym.vmlinux.linux_proc_banner,0',
      '.klp.sym.vmlinux.pipe_max_size,0',
      '.klp.sym.vmlinux.print_cpu,2',
    ]);
    expect(klpSymbols.every((s) => s.reserved === SHN.LIVEPATCH)).toBe(true);
    const undefinedNames = elf.symbols.filter((s) => s.shndx === SHN.UNDEF && s.reserved === 0 && s.name !== '').map((s) => s.name);
    for (const name of ['print_cpu', 'pipe_max_size', 'linux_proc_banner']) expect(undefinedNames).not.toContain(name);
    const klpRela = elf.sections.filter((s) => s.name.startsWith('.klp.rela.vmlinux.'));
    expect(klpRela.map((s) => s.name)).toEqual(['.klp.rela.vmlinux..text']);
    expect(klpRela.every((s) => (s.flags & SHF.RELA_LIVEPATCH) !== 0n)).toBe(true);

    const v = await verifyCase(kernel, out, [path.join(CONVERT_DIR, 'static-calls/check.sh')]);
    if (!v.ok) throw new Error(explainRun('klpforge verify', v.run));
  }, 600_000);

  test('converting the same module twice gives the same bytes', async () => {
    const ko = await fixtureModule('static-calls');
    const first = await outputFor('repro-1', ko);
    const second = await outputFor('repro-2', ko);
    converted(await convertModule(kernel, ko, first));
    converted(await convertModule(kernel, ko, second));
    expect((await readFile(first)).equals(await readFile(second))).toBe(true);
  }, 300_000);

  test('static-calls without its KLPFORGE_SYMPOS is refused: print_cpu is ambiguous, both candidates listed', async () => {
    const ko = await fixtureModule('static-calls', { name: 'static-calls-unannotated', kcflags: '-DKLPFORGE_NO_ANNOTATION' });
    const out = await outputFor('unannotated', ko);
    const { run, report } = await convertModule(kernel, ko, out);
    expect(run.exitCode).toBe(2);
    const reasons = refusalReasons(report);
    expect(reasons).toEqual([expect.objectContaining({ code: 'CONVERT_AMBIGUOUS' })]);
    // kernel/sched/debug.c is compiled as part of build_utility.c in 6.1.
    for (const candidate of ['print_cpu', 'build_utility.c', 'sympos 1', 'timer_list.c', 'sympos 2'])
      expect(reasons[0]!.message).toContain(candidate);
    expect(existsSync(out)).toBe(false);
  }, 300_000);

  test('clone-only: replacing a function gcc kept only as a .isra clone is refused, naming the clone', async () => {
    const ko = await fixtureModule('clone-only');
    const out = await outputFor('clone-only', ko);
    const { run, report } = await convertModule(kernel, ko, out);
    expect(run.exitCode).toBe(2);
    expect(refusalReasons(report)).toEqual([
      expect.objectContaining({ code: 'CONVERT_CLONE_ONLY', message: expect.stringContaining('__set_oom_adj.isra.0') as unknown }),
    ]);
    expect(existsSync(out)).toBe(false);
  }, 300_000);

  test('missing-symbol: a symbol that exists nowhere is refused, named', async () => {
    const ko = await fixtureModule('missing-symbol');
    const out = await outputFor('missing-symbol', ko);
    const { run, report } = await convertModule(kernel, ko, out);
    expect(run.exitCode).toBe(2);
    expect(refusalReasons(report)).toEqual([
      expect.objectContaining({ code: 'CONVERT_UNRESOLVED', message: expect.stringContaining('klpforge_no_such_symbol') as unknown }),
    ]);
    expect(existsSync(out)).toBe(false);
  }, 300_000);
});
