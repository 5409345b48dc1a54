import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, readlink, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { buildIndex, buildStamp, deserializeIndex, serializeIndex, storedBuildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { OrchestratorError } from '../../src/orchestrator/errors.js';
import { buildPatchedObjects, prepareView } from '../../src/orchestrator/views/patched-objects.js';
import { parseDepFile } from '../../src/orchestrator/views/recompile.js';
import { type MiniBuild, miniKbuild, patchFileIn, workDirIn, writeTree } from '../helpers/mini-kbuild.js';

/** Every path, type, size, mtime and inode under `root`, without following links: any write shows. */
async function snapshot(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    const st = await lstat(p);
    out.push(`${path.relative(root, p)} ${st.mode} ${st.size} ${st.mtimeMs} ${st.ino}`);
  }
  return out.sort();
}

/** Entries under `root`, not following symbolic links. */
async function entries(root: string): Promise<number> {
  return (await readdir(root, { recursive: true })).length;
}

const PATCH_F = '--- a/kernel/f.c\n+++ b/kernel/f.c\n@@ -1,4 +1,4 @@\n int f(void)\n {\n-\treturn 1;\n+\treturn 2;\n }\n';

describe('sparse source view', () => {
  let tmp: DirectoryResult;
  let tree: string;
  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
    tree = path.join(tmp.path, 'tree');
    const files: Record<string, string> = {
      'kernel/f.c': 'int f(void)\n{\n\treturn 1;\n}\n',
      'kernel/g.c': 'int g;\n',
      'kernel/sub/h.c': 'int h;\n',
      'include/linux/a.h': '#define A 1\n',
      'include/linux/b.h': '#define B 1\n',
      'doc/old.txt': 'old\n',
      'drivers/x/y/z.c': 'int z;\n',
    };
    await writeTree(tree, files);
    await symlink('../kernel', path.join(tree, 'include/kernel-link'));
  });
  afterEach(async () => tmp.cleanup());

  async function patch(name: string, text: string): Promise<string> {
    const p = path.join(tmp.path, name);
    await writeFile(p, text);
    return p;
  }

  test('holds the touched files as copies, their siblings as hard links, every other directory as a link to the tree; the tree is untouched', async () => {
    const p = await patch(
      'p.patch',
      `${PATCH_F}diff --git a/include/new.h b/include/new.h
new file mode 100644
--- /dev/null
+++ b/include/new.h
@@ -0,0 +1 @@
+#define NEW 1
diff --git a/doc/old.txt b/doc/old.txt
deleted file mode 100644
--- a/doc/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-old
`,
    );
    const before = await snapshot(tree);
    const work = path.join(tmp.path, 'work');
    const view = await prepareView(tree, work, [p]);
    const v = view.viewRoot;
    expect(view.sparse).toBeDefined();
    expect(view.patches[0]!.touched).toEqual(['kernel/f.c', 'include/new.h', 'doc/old.txt']);

    expect(await readFile(path.join(v, 'kernel/f.c'), 'utf8')).toContain('return 2;');
    expect((await stat(path.join(v, 'kernel/f.c'))).ino).not.toBe((await stat(path.join(tree, 'kernel/f.c'))).ino);
    expect((await stat(path.join(v, 'kernel/g.c'))).ino).toBe((await stat(path.join(tree, 'kernel/g.c'))).ino);
    expect(await readlink(path.join(v, 'kernel/sub'))).toBe(path.join(tree, 'kernel/sub'));
    expect(await readlink(path.join(v, 'drivers'))).toBe(path.join(tree, 'drivers'));
    expect(await readFile(path.join(v, 'drivers/x/y/z.c'), 'utf8')).toBe('int z;\n');
    // The tree's own symbolic links are copied as they are, so relative ones resolve inside the view.
    expect(await readlink(path.join(v, 'include/kernel-link'))).toBe('../kernel');
    expect(await readFile(path.join(v, 'include/kernel-link/f.c'), 'utf8')).toContain('return 2;');
    expect(await readFile(path.join(v, 'include/new.h'), 'utf8')).toBe('#define NEW 1\n');
    await expect(lstat(path.join(v, 'doc/old.txt'))).rejects.toThrow();

    expect(await snapshot(tree)).toEqual(before);
    expect(await entries(v)).toBeLessThan(await entries(tree));
  });

  test('a second patch touching a file the first one only linked gives it its own inode first', async () => {
    const first = await patch('1.patch', PATCH_F);
    const second = await patch('2.patch', '--- a/kernel/g.c\n+++ b/kernel/g.c\n@@ -1 +1 @@\n-int g;\n+int g = 1;\n');
    const before = await snapshot(tree);
    const view = await prepareView(tree, path.join(tmp.path, 'work'), [first, second]);
    expect(await readFile(path.join(view.viewRoot, 'kernel/g.c'), 'utf8')).toBe('int g = 1;\n');
    expect(await readFile(path.join(tree, 'kernel/g.c'), 'utf8')).toBe('int g;\n');
    expect(await snapshot(tree)).toEqual(before);
  });

  test('a patch reaching a file through a symbolic link of the tree is refused before patch runs', async () => {
    const p = await patch('p.patch', PATCH_F.replaceAll('kernel/f.c', 'include/kernel-link/f.c'));
    const before = await snapshot(tree);
    const err = (await prepareView(tree, path.join(tmp.path, 'work'), [p]).catch((e: unknown) => e)) as OrchestratorError;
    expect(err).toBeInstanceOf(OrchestratorError);
    expect(err.code).toBe('ORCH_PATCH_DOES_NOT_APPLY');
    expect(err.message).toContain('include/kernel-link, which is a symbolic link or a file in the source tree');
    expect(await snapshot(tree)).toEqual(before);
  });

  test('a patch that does not apply names the rejected hunk, as in the full view', async () => {
    const p = await patch('stale.patch', PATCH_F.replace('-\treturn 1;', '-\treturn 7;'));
    const err = (await prepareView(tree, path.join(tmp.path, 'work'), [p]).catch((e: unknown) => e)) as OrchestratorError;
    expect(err.code).toBe('ORCH_PATCH_DOES_NOT_APPLY');
    expect(err.message).toContain('kernel/f.c: hunk #1 FAILED at line 1');
  });

  test('files in new directories, then a second patch in the same new directory', async () => {
    const add = (file: string, line: string): string =>
      `diff --git a/${file} b/${file}\nnew file mode 100644\n--- /dev/null\n+++ b/${file}\n@@ -0,0 +1 @@\n+${line}\n`;
    const first = await patch('1.patch', add('newdir/deep/a.c', 'int a;'));
    const second = await patch('2.patch', add('newdir/deep/b.c', 'int b;'));
    const view = await prepareView(tree, path.join(tmp.path, 'work'), [first, second]);
    expect(await readFile(path.join(view.viewRoot, 'newdir/deep/b.c'), 'utf8')).toBe('int b;\n');
    await expect(stat(path.join(tree, 'newdir'))).rejects.toThrow();
  });
});

/**
 * A miniature out-of-tree kbuild build (as in orchestrator-pipeline.test.ts)
 * whose sources include headers in the ways that matter to a sparse view:
 * a quote include of a sibling, `../` from the source's directory, and an -I
 * directory holding a symbolic link across the tree.
 */
function miniBuild(): Promise<MiniBuild> {
  return miniKbuild(
    {
      'include/lib.h': '#define VALUE 1\n',
      'kernel/common/value.h': '#define COMMON 10\n',
      'kernel/local/local.h': '#define LOCAL 100\n',
      'kernel/local/a.c':
        '#include "local.h"\n#include "../common/value.h"\n#include <lib.h>\nconst char *a_file = __FILE__;\nint a(void)\n{\n\treturn VALUE + COMMON + LOCAL;\n}\n',
      'kernel/b.c': '#include <link.h>\nint b(void)\n{\n\treturn LINKED;\n}\n',
      'kernel/target/linked.h': '#define LINKED 5\n',
    },
    [
      { object: 'kernel/local/a.o', source: 'kernel/local/a.c', flags: (src) => `-I${src}/include -I ${src}/kernel/local` },
      { object: 'kernel/b.o', source: 'kernel/b.c', flags: (src) => `-I${src}/kernel/links` },
    ],
    async (src) => {
      await mkdir(path.join(src, 'kernel/links'), { recursive: true });
      await symlink('../target/linked.h', path.join(src, 'kernel/links/link.h'));
    },
  );
}

describe('recompiling in a sparse view', () => {
  let mini: MiniBuild;
  beforeAll(async () => {
    mini = await miniBuild();
  });
  afterAll(async () => mini.tmp.cleanup());

  const patchFile = (name: string, text: string): Promise<string> => patchFileIn(mini, name, text);
  const work = (): Promise<string> => workDirIn(mini);
  /** The same patches built in a sparse view and in a full one: the objects must be byte-identical. */
  async function both(patches: string[]) {
    const [sparse, full] = await Promise.all([work(), work()]);
    const s = await buildPatchedObjects({ sourceDir: mini.src, buildDir: mini.build, patches, workDir: sparse });
    const fullView = await prepareView(mini.src, path.join(full, 'views'), patches, { full: true });
    const f = await buildPatchedObjects({ sourceDir: mini.src, buildDir: mini.build, patches, workDir: full, view: fullView });
    return { s, f };
  }

  test("a header reached through ../ and a sibling quote include: the object is the full view's, byte for byte", async () => {
    const p = await patchFile(
      'common.patch',
      '--- a/kernel/common/value.h\n+++ b/kernel/common/value.h\n@@ -1 +1 @@\n-#define COMMON 10\n+#define COMMON 20\n',
    );
    const [srcBefore, buildBefore] = [await snapshot(mini.src), await snapshot(mini.build)];
    const { s, f } = await both([p]);
    expect(s.pairs.map((x) => [x.object, x.because])).toEqual([['kernel/local/a.o', ['kernel/common/value.h']]]);
    expect(s.pairs[0]!.fullViewBecause).toBeUndefined();
    const [so, fo, orig] = await Promise.all([
      readFile(s.pairs[0]!.patched),
      readFile(f.pairs[0]!.patched),
      readFile(s.pairs[0]!.original),
    ]);
    expect(so.equals(fo)).toBe(true);
    expect(so.equals(orig)).toBe(false);
    expect(execFileSync('strings', [s.pairs[0]!.patched], { encoding: 'utf8' })).toContain('kernel/local/a.c');
    // The source's directory was left through `..`, so it is a real directory of the view.
    expect((await lstat(path.join(s.viewRoot, 'kernel/local'))).isDirectory()).toBe(true);
    expect(await snapshot(mini.src)).toEqual(srcBefore);
    expect(await snapshot(mini.build)).toEqual(buildBefore);
  });

  test('a comment-only change gives the original object back', async () => {
    const p = await patchFile(
      'comment.patch',
      '--- a/kernel/local/a.c\n+++ b/kernel/local/a.c\n@@ -3,3 +3,4 @@\n #include <lib.h>\n+/* a comment */\n const char *a_file = __FILE__;\n int a(void)\n',
    );
    const r = await buildPatchedObjects({ sourceDir: mini.src, buildDir: mini.build, patches: [p], workDir: await work() });
    // Only the line numbers of what follows the comment could move; this object has none in its code.
    expect(r.pairs[0]!.fullViewBecause).toBeUndefined();
    expect((await readFile(r.pairs[0]!.patched)).equals(await readFile(r.pairs[0]!.original))).toBe(true);
  });

  test('a file read through a symbolic link of the tree onto a touched file: compiled again in a full view', async () => {
    const p = await patchFile(
      'linked.patch',
      [
        '--- a/kernel/target/linked.h\n+++ b/kernel/target/linked.h\n@@ -1 +1 @@\n-#define LINKED 5\n+#define LINKED 6\n',
        '--- a/kernel/b.c\n+++ b/kernel/b.c\n@@ -2,3 +2,3 @@\n int b(void)\n {\n-\treturn LINKED;\n+\treturn LINKED + 0;\n',
      ].join(''),
    );
    const { s, f } = await both([p]);
    expect(s.pairs.map((x) => x.object)).toEqual(['kernel/b.o']);
    expect(s.pairs[0]!.fullViewBecause).toBe(path.join(s.viewRoot, 'kernel/links/link.h'));
    expect(f.pairs[0]!.fullViewBecause).toBeUndefined();
    expect((await readFile(s.pairs[0]!.patched)).equals(await readFile(f.pairs[0]!.patched))).toBe(true);
  });
});

describe('gcc dependency files', () => {
  test('continuation lines, escaped spaces and $$ are read as make reads them', () => {
    const text = 'out/a.o: /src/a.c /src/include/x.h \\\n /src/with\\ space.h \\\n  include/generated/autoconf.h /src/d$$.h\n';
    expect(parseDepFile(text)).toEqual(['/src/a.c', '/src/include/x.h', '/src/with space.h', 'include/generated/autoconf.h', '/src/d$.h']);
  });
});

describe('stored build index', () => {
  let mini: MiniBuild;
  beforeAll(async () => {
    mini = await miniBuild();
  });
  afterAll(async () => mini.tmp.cleanup());

  test('reads back equal to the index it was made from, and only for the same build', async () => {
    const index = await buildIndex(mini.build);
    const stamp = await buildStamp(mini.build);
    const text = serializeIndex(index, stamp);
    expect(deserializeIndex(text, stamp)).toEqual(index);
    expect(deserializeIndex(text, `${stamp}x`)).toBeUndefined();
    expect(deserializeIndex('{"format":1', stamp)).toBeUndefined();
    expect(deserializeIndex(JSON.stringify({ format: 1, stamp }), stamp)).toBeUndefined();
  });

  test('storedBuildIndex stores on first use, reads after, and rebuilds when the build changed', async () => {
    const store = path.join(mini.tmp.path, 'store/index.json');
    const first = await storedBuildIndex(mini.build, store);
    expect(first.stored).toBe(false);
    const second = await storedBuildIndex(mini.build, store);
    expect(second.stored).toBe(true);
    expect(second.index).toEqual(first.index);

    await writeFile(path.join(mini.build, 'vmlinux.o'), 'relinked');
    await utimes(path.join(mini.build, 'vmlinux.o'), new Date(), new Date());
    expect((await storedBuildIndex(mini.build, store)).stored).toBe(false);
    expect((await storedBuildIndex(mini.build, store)).stored).toBe(true);
  });
});
