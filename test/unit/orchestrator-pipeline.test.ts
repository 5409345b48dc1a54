import { execFileSync } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { affectedObjects } from '../../src/orchestrator/kbuild/affected.js';
import { buildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { OrchestratorError } from '../../src/orchestrator/errors.js';
import { buildPatchedObjects } from '../../src/orchestrator/views/patched-objects.js';
import { relevantLines, rewriteCommand } from '../../src/orchestrator/views/recompile.js';
import { type MiniBuild, type MiniObject, miniKbuild, patchFileIn, workDirIn } from '../helpers/mini-kbuild.js';

/**
 * A miniature out-of-tree "kernel build" made the way kbuild makes one: a
 * source tree, a build dir linking to it with BUILD/source, and per object a
 * .cmd file whose command ran with cwd = build dir. objcopy stands in for
 * objtool as the second command that rewrites the object in place.
 */
function miniBuild(): Promise<MiniBuild> {
  const object = (o: string, source: string, deps: string[]): MiniObject => ({
    object: o,
    source,
    flags: (src) => `-I${src}/include`,
    then: `objcopy --remove-section .comment   ${o}`,
    deps,
    extraDepLines: ['$(wildcard include/config/X)'],
  });
  return miniKbuild(
    {
      'include/lib.h': '#define VALUE 1\n',
      'kernel/a.c': '#include <lib.h>\nconst char *a_file = __FILE__;\nint a(void)\n{\n\treturn VALUE;\n}\n',
      'kernel/b.c': 'int b(void)\n{\n\treturn 0;\n}\n',
      'arch/x86/entry/e.S': '.text\n.globl e\ne: ret\n',
      'Documentation/x.txt': 'docs\n',
    },
    [
      object('kernel/a.o', 'kernel/a.c', ['include/lib.h']),
      object('kernel/b.o', 'kernel/b.c', []),
      object('arch/x86/entry/e.o', 'arch/x86/entry/e.S', []),
    ],
  );
}

/** Every file under `root` with size and mtime: any write into the build dir or the tree changes it. */
async function snapshot(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    const p = path.join(e.parentPath, e.name);
    const st = await stat(p).catch(() => null);
    out.push(`${path.relative(root, p)} ${st?.size} ${st?.mtimeMs} ${st?.ino}`);
  }
  return out.sort();
}

function sectionNames(object: string): string[] {
  const out = execFileSync('readelf', ['-SW', object], { encoding: 'utf8' });
  return [...out.matchAll(/\]\s+(\S+)/g)].map((m) => m[1]!);
}

describe('orchestrator on a miniature kbuild build dir', () => {
  let mini: MiniBuild;
  beforeAll(async () => {
    mini = await miniBuild();
  });
  afterAll(async () => mini.tmp.cleanup());

  const patchFile = (name: string, text: string): Promise<string> => patchFileIn(mini, name, text);
  const work = (): Promise<string> => workDirIn(mini);

  test('the index maps sources and headers to their objects and classifies assembly', async () => {
    const index = await buildIndex(mini.build);
    expect(index.recordedSourceDir).toBe(mini.src);
    expect(index.bySource.get('kernel/a.c')).toEqual(['kernel/a.o']);
    expect(index.byDependency.get('include/lib.h')).toEqual(['kernel/a.o']);
    expect(index.objects.get('arch/x86/entry/e.o')!.livepatch).toEqual({ livepatchable: false, reason: 'assembly' });
    expect(affectedObjects(index, ['include/lib.h', 'arch/x86/entry/e.S', 'Documentation/x.txt', 'kernel/Makefile'])).toEqual({
      rebuild: [{ object: 'kernel/a.o', because: ['include/lib.h'] }],
      notLivepatchable: [{ object: 'arch/x86/entry/e.o', because: ['arch/x86/entry/e.S'], reason: 'assembly' }],
      outside: ['Documentation/x.txt'],
      buildInputs: ['kernel/Makefile'],
    });
  });

  test('an object reached through both its source and a header lists both reasons once', async () => {
    const index = await buildIndex(mini.build);
    expect(affectedObjects(index, ['kernel/a.c', 'include/lib.h', 'kernel/a.c']).rebuild).toEqual([
      { object: 'kernel/a.o', because: ['kernel/a.c', 'include/lib.h'] },
    ]);
  });

  test('a header change recompiles its includer with the recorded command; tree and build dir are untouched', async () => {
    const p = await patchFile(
      'value.patch',
      '--- a/include/lib.h\n+++ b/include/lib.h\n@@ -1 +1 @@\n-#define VALUE 1\n+#define VALUE 42\n',
    );
    const [srcBefore, buildBefore] = [await snapshot(mini.src), await snapshot(mini.build)];
    const w = await work();
    const r = await buildPatchedObjects({ sourceDir: mini.src, buildDir: mini.build, patches: [p], workDir: w, jobs: 2 });

    expect(r.pairs.map(({ object, original, patched, because }) => ({ object, original, patched, because }))).toEqual([
      {
        object: 'kernel/a.o',
        original: path.join(mini.build, 'kernel/a.o'),
        patched: path.join(w, 'patched/kernel/a.o'),
        because: ['include/lib.h'],
      },
    ]);
    expect(r.touched).toEqual(['include/lib.h']);
    expect(await readFile(r.pairs[0]!.patched)).not.toEqual(await readFile(r.pairs[0]!.original));
    // The second command (objtool's place) ran on the new object, not on the build dir's.
    expect(sectionNames(r.pairs[0]!.patched)).not.toContain('.comment');
    // __FILE__ is spelled as in the original build, not with the view's path.
    const strings = execFileSync('strings', [r.pairs[0]!.patched], { encoding: 'utf8' });
    expect(strings).toContain('kernel/a.c');
    expect(strings).not.toContain(w);
    expect(await readFile(path.join(w, 'patched/kernel/.a.o.d'), 'utf8')).toContain('lib.h');
    expect(await snapshot(mini.src)).toEqual(srcBefore);
    expect(await snapshot(mini.build)).toEqual(buildBefore);
  });

  test('files no object uses are reported as outside, assembly as not livepatchable, and nothing is compiled', async () => {
    const p = await patchFile(
      'docs-asm.patch',
      '--- a/Documentation/x.txt\n+++ b/Documentation/x.txt\n@@ -1 +1 @@\n-docs\n+more docs\n' +
        '--- a/arch/x86/entry/e.S\n+++ b/arch/x86/entry/e.S\n@@ -3 +3 @@\n-e: ret\n+e: nop; ret\n',
    );
    const w = await work();
    const r = await buildPatchedObjects({ sourceDir: mini.src, buildDir: mini.build, patches: [p], workDir: w });
    expect(r.pairs).toEqual([]);
    expect(r.outside).toEqual(['Documentation/x.txt']);
    expect(r.notLivepatchable).toEqual([{ object: 'arch/x86/entry/e.o', because: ['arch/x86/entry/e.S'], reason: 'assembly' }]);
  });

  test("a compile error names the object and shows gcc's error with tree-relative paths", async () => {
    const p = await patchFile(
      'broken.patch',
      '--- a/kernel/b.c\n+++ b/kernel/b.c\n@@ -3 +3 @@\n-\treturn 0;\n+\treturn undeclared_thing;\n',
    );
    const w = await work();
    const err = (await buildPatchedObjects({ sourceDir: mini.src, buildDir: mini.build, patches: [p], workDir: w }).catch(
      (e: unknown) => e,
    )) as OrchestratorError;
    expect(err).toBeInstanceOf(OrchestratorError);
    expect(err.code).toBe('ORCH_COMPILE_FAILED');
    expect(err.message.split('\n')[0]).toMatch(
      /^kernel\/b\.o: recompiling with the patch failed \(exit 1\): fix the patch so it compiles$/,
    );
    expect(err.message).toMatch(/^kernel\/b\.c:3:\d+: error: [‘']undeclared_thing[’'] undeclared/m);
    expect(err.message).not.toContain(w);
  });

  test('a source dir other than the one the build was made from is refused', async () => {
    const other = await workDirIn(mini);
    await expect(buildPatchedObjects({ sourceDir: other, buildDir: mini.build, patches: [], workDir: await work() })).rejects.toMatchObject(
      { code: 'ORCH_TREE_MISMATCH' },
    );
  });
});

describe('rewriteCommand', () => {
  const record = {
    object: 'fs/proc/cmdline.o',
    command:
      'gcc -Wp,-MMD,fs/proc/.cmdline.o.d -nostdinc -I/src/linux/include -I./include -fmacro-prefix-map=/src/linux/= -DKBUILD_MODFILE=\'"fs/proc/proc"\' -c -o fs/proc/cmdline.o /src/linux/fs/proc/cmdline.c   ; ./tools/objtool/objtool --orc   fs/proc/cmdline.o',
  };
  const base = { recordedSourceDir: '/src/linux', viewRoot: '/w/source', outDir: '/w/patched' };

  test("moves the tree, the object, objtool's argument and the dep file; keeps everything else", () => {
    expect(rewriteCommand(record, base)).toBe(
      'gcc -fdebug-prefix-map=/w/source=/src/linux -Wp,-MMD,/w/patched/fs/proc/.cmdline.o.d -nostdinc -I/w/source/include -I./include -fmacro-prefix-map=/w/source/= -DKBUILD_MODFILE=\'"fs/proc/proc"\' -c -o /w/patched/fs/proc/cmdline.o /w/source/fs/proc/cmdline.c   ; ./tools/objtool/objtool --orc   /w/patched/fs/proc/cmdline.o',
    );
  });

  test('extra include dirs come before every recorded -I; extra flags after the recorded flags, only for the compiler', () => {
    const cmd = rewriteCommand(record, { ...base, extraIncludeDirs: ['/klp/include'], extraFlags: ['-DKLP=1', '-fno-ipa-sra'] });
    expect(cmd.indexOf('-I /klp/include')).toBeLessThan(cmd.indexOf('-I/w/source/include'));
    expect(cmd).toContain('-DKBUILD_MODFILE=\'"fs/proc/proc"\' -DKLP=1 -fno-ipa-sra -c -o /w/patched/fs/proc/cmdline.o');
    expect(cmd.split(' ; ')[1]).toBe('./tools/objtool/objtool --orc   /w/patched/fs/proc/cmdline.o');
  });

  test('a path that merely starts with the tree path is not rewritten', () => {
    const cmd = rewriteCommand({ ...record, command: `${record.command} -I/src/linux-extra/include` }, base);
    expect(cmd).toContain('-I/src/linux-extra/include');
  });

  test('a command writing other build-dir files is refused rather than run', () => {
    expect(() => rewriteCommand({ ...record, command: `${record.command} > fs/proc/.tmp_cmdline.ver` }, base)).toThrow(
      expect.objectContaining({ code: 'ORCH_UNSUPPORTED_COMMAND' }),
    );
  });
});

describe('relevantLines', () => {
  test("keeps gcc's error with its function line and source excerpt, drops unrelated warnings", () => {
    const stderr = [
      'include/linux/x.h:1:1: warning: something unrelated [-Wfoo]',
      "fs/proc/cmdline.c: In function 'cmdline_proc_show':",
      "fs/proc/cmdline.c:9:21: error: 'nope' undeclared (first use in this function)",
      '    9 |         seq_puts(m, nope);',
      '      |                     ^~~~',
      'make: *** something',
    ].join('\n');
    expect(relevantLines(stderr)).toBe(
      [
        "fs/proc/cmdline.c: In function 'cmdline_proc_show':",
        "fs/proc/cmdline.c:9:21: error: 'nope' undeclared (first use in this function)",
        '    9 |         seq_puts(m, nope);',
        '      |                     ^~~~',
      ].join('\n'),
    );
  });
});
