import { jest } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import { readElfFile, type ElfObject } from '../../src/elf/index.js';
import { affectedObjects } from '../../src/orchestrator/kbuild/affected.js';
import { buildIndex, type BuildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { OrchestratorError } from '../../src/orchestrator/errors.js';
import { buildPatchedObjects, type PatchedObjects } from '../../src/orchestrator/views/patched-objects.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

/**
 * The orchestrator on the real Linux 6.1 fixture: the function-sections build
 * (the objects the differ compares) and its source tree, both shared with
 * other tests and never written.
 */
jest.setTimeout(180_000);

const PATCHES = path.join(REPO_ROOT, 'kernel-fixtures/orchestrator');
const patch = (name: string): string => path.join(PATCHES, name);

/** Each file's path, size, mtime and inode: any write, replace or new file shows. */
async function treeState(root: string): Promise<string> {
  const r = await execa('find', [root, '-printf', '%P %s %T@ %i\n'], { maxBuffer: 1 << 28 });
  return r.stdout.split('\n').sort().join('\n');
}

function bytesSections(o: ElfObject): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const s of o.sections) if (s.body.kind === 'bytes') out.set(s.name, s.body.data);
  return out;
}

describe('buildPatchedObjects on the fixture kernel (fsections build)', () => {
  const kernel = fixtureKernel();
  let index: BuildIndex;
  const works: DirectoryResult[] = [];

  beforeAll(async () => {
    index = await buildIndex(kernel.fsections);
  });
  afterAll(async () => {
    for (const w of works) await w.cleanup();
  });

  async function build(patches: string[]): Promise<{ result: PatchedObjects; workDir: string }> {
    const w = await dir({ prefix: 'klpforge-orch-', unsafeCleanup: true });
    works.push(w);
    const result = await buildPatchedObjects({
      sourceDir: kernel.source,
      buildDir: kernel.fsections,
      patches,
      workDir: w.path,
      jobs: 2,
      index,
    });
    return { result, workDir: w.path };
  }

  test('a one-line patch to fs/proc/cmdline.c rebuilds exactly fs/proc/cmdline.o, changing only cmdline_proc_show; tree and build untouched', async () => {
    const [srcBefore, buildBefore] = await Promise.all([treeState(kernel.source), treeState(kernel.fsections)]);
    const { result, workDir } = await build([patch('cmdline-one-line.patch')]);
    const [srcAfter, buildAfter] = await Promise.all([treeState(kernel.source), treeState(kernel.fsections)]);
    expect(srcAfter).toBe(srcBefore);
    expect(buildAfter).toBe(buildBefore);

    expect(result.touched).toEqual(['fs/proc/cmdline.c']);
    expect(result.outside).toEqual([]);
    expect(result.notLivepatchable).toEqual([]);
    expect(result.pairs.map((p) => [p.object, p.original, p.patched])).toEqual([
      ['fs/proc/cmdline.o', path.join(kernel.fsections, 'fs/proc/cmdline.o'), path.join(workDir, 'patched/fs/proc/cmdline.o')],
    ]);

    const [original, patched] = await Promise.all([readElfFile(result.pairs[0]!.original), readElfFile(result.pairs[0]!.patched)]);
    const a = bytesSections(original);
    const b = bytesSections(patched);
    expect(b.get('.text.cmdline_proc_show')).toBeDefined();
    expect(b.get('.text.cmdline_proc_show')!.equals(a.get('.text.cmdline_proc_show')!)).toBe(false);
    const changed = [...a.keys()].filter((name) => !b.get(name)?.equals(a.get(name)!));
    expect(changed).toEqual(['.text.cmdline_proc_show']);
    // objtool ran on the new object: it made the same special sections as for the original.
    const names = (o: ElfObject): string[] =>
      o.sections
        .map((s) => s.name)
        .filter((n) => /orc_unwind|return_sites|__mcount_loc/.test(n))
        .sort();
    expect(names(patched)).toEqual(names(original));
    expect(names(patched)).toEqual(expect.arrayContaining(['.orc_unwind', '.orc_unwind_ip', '.return_sites']));
  });

  test('replaying the recorded command is exact: a comment-only patch gives a byte-identical object', async () => {
    const { result } = await build([patch('cmdline-comment-only.patch')]);
    expect(result.pairs.map((p) => p.object)).toEqual(['fs/proc/cmdline.o']);
    const [a, b] = await Promise.all([readFile(result.pairs[0]!.original), readFile(result.pairs[0]!.patched)]);
    expect(b.equals(a)).toBe(true);
  });

  test('fs/binfmt_misc.c, built as a module (=m), is recompiled with -DMODULE and objtool --module', async () => {
    const { result } = await build([patch('binfmt-misc-status.patch')]);
    expect(result.pairs.map((p) => p.object)).toEqual(['fs/binfmt_misc.o']);
    expect(index.objects.get('fs/binfmt_misc.o')!.command).toMatch(/-DMODULE[\s\S]*objtool .*--module/);
    const [original, patched] = await Promise.all([readElfFile(result.pairs[0]!.original), readElfFile(result.pairs[0]!.patched)]);
    const a = bytesSections(original);
    const b = bytesSections(patched);
    // Only bm_status_read's sections change: its string, and at -O2 its code too (gcc folds strlen() of the literals).
    const changed = [...a.keys()].filter((name) => !b.get(name)?.equals(a.get(name)!));
    expect(changed).toContain('.rodata.bm_status_read.str1.1');
    expect(changed.filter((name) => !name.includes('bm_status_read'))).toEqual([]);
    expect(b.get('.rodata.bm_status_read.str1.1')!.toString('latin1')).toContain('enabled (klpforge)\n');
    expect(b.has('.orc_unwind')).toBe(true);
  });

  test('a header used by two objects rebuilds both of them', async () => {
    expect([...index.byDependency.get('include/linux/kobj_map.h')!].sort()).toEqual(['drivers/base/map.o', 'fs/char_dev.o']);
    const { result } = await build([patch('kobj-map-header.patch')]);
    expect(result.pairs.map((p) => [p.object, p.because])).toEqual([
      ['drivers/base/map.o', ['include/linux/kobj_map.h']],
      ['fs/char_dev.o', ['include/linux/kobj_map.h']],
    ]);
  });

  test('a widely used header reaches exactly the objects whose .cmd files list it', async () => {
    for (const header of ['include/linux/fs.h', 'include/linux/kernel.h']) {
      // Independent oracle: grep the dependency lines kbuild wrote.
      const grep = await execa('grep', ['-rlxF', '--include=.*.o.cmd', `  ${kernel.source}/${header} \\`, kernel.fsections], {
        reject: false,
      });
      const expected = grep.stdout
        .split('\n')
        .filter(Boolean)
        .map((f) => path.relative(kernel.fsections, f).replace(/(^|\/)\.([^/]+)\.cmd$/, '$1$2'))
        .sort();
      const got = affectedObjects(index, [header]);
      const all = [...got.rebuild.map((o) => o.object), ...got.notLivepatchable.map((o) => o.object)].sort();
      expect(all).toEqual(expected);
      expect(all.length).toBeGreaterThan(400);
      // Assembly objects include some headers too: they are flagged, not rebuilt.
      expect(got.notLivepatchable.every((o) => !index.objects.get(o.object)!.livepatch.livepatchable)).toBe(true);
    }
  });

  test('a patch touching only Documentation/ yields no objects and reports the file as outside the build', async () => {
    const { result } = await build([patch('documentation-only.patch')]);
    expect(result).toMatchObject({ pairs: [], notLivepatchable: [], outside: ['Documentation/filesystems/proc.rst'] });
  });

  test('a patch that does not apply names the patch file and shows the rejected hunk', async () => {
    const err = (await build([patch('cmdline-stale.patch')]).catch((e: unknown) => e)) as OrchestratorError;
    expect(err).toBeInstanceOf(OrchestratorError);
    expect(err.code).toBe('ORCH_PATCH_DOES_NOT_APPLY');
    expect(err.message.split('\n')[0]).toContain(patch('cmdline-stale.patch'));
    expect(err.message).toContain('fs/proc/cmdline.c: hunk #1 FAILED at line 6:\n@@ -6,7 +6,7 @@');
    expect(err.message).toContain('\tseq_putc(m, 0);');
  });

  test("a patch that does not compile gives the object name and the compiler's error", async () => {
    const err = (await build([patch('cmdline-compile-error.patch')]).catch((e: unknown) => e)) as OrchestratorError;
    expect(err).toBeInstanceOf(OrchestratorError);
    expect(err.code).toBe('ORCH_COMPILE_FAILED');
    expect(err.message.split('\n')[0]).toMatch(/^fs\/proc\/cmdline\.o: recompiling with the patch failed/);
    expect(err.message).toMatch(/fs\/proc\/cmdline\.c:9:\d+: error: .saved_command_line_that_does_not_exist. undeclared/);
    expect(err.message.split('\n').length).toBeLessThan(20);
  });
});
