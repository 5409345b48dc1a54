import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { link, lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { OrchestratorError } from '../../src/orchestrator/errors.js';
import { applyPatches, createSourceView } from '../../src/orchestrator/views/source-view.js';

const ORIGINAL_C = 'int f(void)\n{\n\treturn 1;\n}\n';
const PATCH = `--- a/kernel/f.c
+++ b/kernel/f.c
@@ -1,4 +1,4 @@
 int f(void)
 {
-\treturn 1;
+\treturn 2;
 }
diff --git a/include/new.h b/include/new.h
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
`;

describe('source view (hard-link farm + patch)', () => {
  let tmp: DirectoryResult;
  let tree: string;
  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
    tree = path.join(tmp.path, 'tree');
    await mkdir(path.join(tree, 'kernel'), { recursive: true });
    await mkdir(path.join(tree, 'include'), { recursive: true });
    await mkdir(path.join(tree, 'doc'), { recursive: true });
    await writeFile(path.join(tree, 'kernel/f.c'), ORIGINAL_C);
    await writeFile(path.join(tree, 'include/untouched.h'), '#define U 1\n');
    await writeFile(path.join(tree, 'doc/old.txt'), 'old\n');
  });
  afterEach(async () => tmp.cleanup());

  test('patching the view leaves the original tree byte-identical, inode for inode; untouched files stay hard links', async () => {
    const view = path.join(tmp.path, 'view');
    const patchFile = path.join(tmp.path, 'p.patch');
    await writeFile(patchFile, PATCH);
    const before = await stat(path.join(tree, 'kernel/f.c'));

    await createSourceView(tree, view);
    const applied = await applyPatches(view, [patchFile]);

    expect(applied[0]!.touched).toEqual(['kernel/f.c', 'include/new.h', 'doc/old.txt']);
    expect(await readFile(path.join(view, 'kernel/f.c'), 'utf8')).toContain('return 2;');
    expect(await readFile(path.join(tree, 'kernel/f.c'), 'utf8')).toBe(ORIGINAL_C);
    const after = await stat(path.join(tree, 'kernel/f.c'));
    expect({ ino: after.ino, mtime: after.mtimeMs, size: after.size, mode: after.mode }).toEqual({
      ino: before.ino,
      mtime: before.mtimeMs,
      size: before.size,
      mode: before.mode,
    });
    expect((await stat(path.join(view, 'kernel/f.c'))).ino).not.toBe(before.ino);
    // The deleted file is gone from the view only; the new one exists in the view only.
    expect(await readFile(path.join(tree, 'doc/old.txt'), 'utf8')).toBe('old\n');
    await expect(stat(path.join(view, 'doc/old.txt'))).rejects.toThrow();
    await expect(stat(path.join(tree, 'include/new.h'))).rejects.toThrow();
    const [u1, u2] = await Promise.all([stat(path.join(tree, 'include/untouched.h')), stat(path.join(view, 'include/untouched.h'))]);
    expect(u2.ino).toBe(u1.ino);
    expect(u1.nlink).toBe(2);
  });

  test('GNU patch by itself replaces a hard-linked file by rename: the other link keeps the old bytes', async () => {
    // The view gives touched files their own inode anyway; this pins down the patch behaviour we also rely on.
    const other = path.join(tmp.path, 'other.c');
    await link(path.join(tree, 'kernel/f.c'), other);
    const patchFile = path.join(tmp.path, 'p.patch');
    await writeFile(patchFile, PATCH.split('diff --git')[0]!);
    execFileSync('patch', ['-p1', '--batch', '-d', tree, '-i', patchFile], { stdio: 'pipe' });
    expect(await readFile(other, 'utf8')).toBe(ORIGINAL_C);
    expect(await readFile(path.join(tree, 'kernel/f.c'), 'utf8')).toContain('return 2;');
  });

  test('a patch that does not apply is an error naming the patch, the file and showing the rejected hunk', async () => {
    const view = path.join(tmp.path, 'view');
    const patchFile = path.join(tmp.path, 'stale.patch');
    await writeFile(patchFile, '--- a/kernel/f.c\n+++ b/kernel/f.c\n@@ -1,4 +1,4 @@\n int f(void)\n {\n-\treturn 7;\n+\treturn 8;\n }\n');
    await createSourceView(tree, view);
    const err = await applyPatches(view, [patchFile]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrchestratorError);
    const e = err as OrchestratorError;
    expect(e.code).toBe('ORCH_PATCH_DOES_NOT_APPLY');
    expect(e.message.split('\n')[0]).toBe(`${patchFile}: does not apply to the source tree: rebase the patch onto this kernel version`);
    expect(e.message).toContain('kernel/f.c: hunk #1 FAILED at line 1:\n@@ -1,4 +1,4 @@\n int f(void)\n {\n-\treturn 7;');
    expect(await readFile(path.join(view, 'kernel/f.c'), 'utf8')).toBe(ORIGINAL_C);
  });

  test('patches apply in order: the second is checked against the tree the first left', async () => {
    const view = path.join(tmp.path, 'view');
    const first = path.join(tmp.path, '1.patch');
    const second = path.join(tmp.path, '2.patch');
    await writeFile(first, PATCH.split('diff --git')[0]!);
    await writeFile(second, '--- a/kernel/f.c\n+++ b/kernel/f.c\n@@ -3 +3 @@\n-\treturn 2;\n+\treturn 3;\n');
    await createSourceView(tree, view);
    await applyPatches(view, [first, second]);
    expect(await readFile(path.join(view, 'kernel/f.c'), 'utf8')).toContain('return 3;');

    const view2 = path.join(tmp.path, 'view2');
    await createSourceView(tree, view2);
    const err = (await applyPatches(view2, [second]).catch((e: unknown) => e)) as OrchestratorError;
    expect(err.code).toBe('ORCH_PATCH_DOES_NOT_APPLY');
  });

  test('an already applied (reversed) patch is refused, not silently reverted', async () => {
    const view = path.join(tmp.path, 'view');
    const patchFile = path.join(tmp.path, 'p.patch');
    await writeFile(patchFile, PATCH.split('diff --git')[0]!);
    await createSourceView(tree, view);
    const err = (await applyPatches(view, [patchFile, patchFile]).catch((e: unknown) => e)) as OrchestratorError;
    expect(err.code).toBe('ORCH_PATCH_DOES_NOT_APPLY');
    expect(err.message).toContain('after the 1 patch before it');
    expect(await readFile(path.join(view, 'kernel/f.c'), 'utf8')).toContain('return 2;');
  });

  test('a file without diff headers and a path escaping the tree are refused before patch runs', async () => {
    const view = path.join(tmp.path, 'view');
    await createSourceView(tree, view);
    const notPatch = path.join(tmp.path, 'notes.txt');
    await writeFile(notPatch, 'hello\n');
    await expect(applyPatches(view, [notPatch])).rejects.toMatchObject({ code: 'ORCH_PATCH_EMPTY' });
    const escaping = path.join(tmp.path, 'escape.patch');
    await writeFile(escaping, '--- a/../outside.c\n+++ b/../outside.c\n@@ -1 +1 @@\n-a\n+b\n');
    await expect(applyPatches(view, [escaping])).rejects.toMatchObject({ code: 'ORCH_PATCH_DOES_NOT_APPLY' });
    await expect(applyPatches(view, [path.join(tmp.path, 'missing.patch')])).rejects.toMatchObject({ code: 'ORCH_PATCH_UNREADABLE' });
  });

  test('a source dir given through a symlink still gets a real view: patching never reaches the tree', async () => {
    const linkToTree = path.join(tmp.path, 'tree-link');
    await symlink(tree, linkToTree);
    const view = path.join(tmp.path, 'view');
    const patchFile = path.join(tmp.path, 'p.patch');
    await writeFile(patchFile, PATCH.split('diff --git')[0]!);
    await createSourceView(linkToTree, view);
    expect((await lstat(view)).isDirectory()).toBe(true);
    await applyPatches(view, [patchFile]);
    expect(await readFile(path.join(tree, 'kernel/f.c'), 'utf8')).toBe(ORIGINAL_C);
  });

  test("a patch touching a symlink is refused: the link could point into the user's tree", async () => {
    await symlink(path.join(tree, 'kernel/f.c'), path.join(tree, 'kernel/link.c'));
    const view = path.join(tmp.path, 'view');
    const patchFile = path.join(tmp.path, 'p.patch');
    await writeFile(patchFile, PATCH.split('diff --git')[0]!.replaceAll('kernel/f.c', 'kernel/link.c'));
    await createSourceView(tree, view);
    await expect(applyPatches(view, [patchFile])).rejects.toMatchObject({ code: 'ORCH_PATCH_DOES_NOT_APPLY' });
    expect(await readFile(path.join(tree, 'kernel/f.c'), 'utf8')).toBe(ORIGINAL_C);
  });

  // /dev/shm is a tmpfs: another filesystem than the temp dir's on this machine, and usually elsewhere.
  const otherFs = ((): boolean => {
    try {
      return statSync('/dev/shm').dev !== statSync(process.env.TMPDIR ?? '/tmp').dev;
    } catch {
      return false;
    }
  })();
  (otherFs ? test : test.skip)('a work dir on another filesystem is an error saying where to put it', async () => {
    const shm = await dir({ tmpdir: '/dev/shm', unsafeCleanup: true });
    try {
      const err = (await createSourceView(tree, path.join(shm.path, 'view')).catch((e: unknown) => e)) as OrchestratorError;
      expect(err.code).toBe('ORCH_VIEW_FAILED');
      expect(err.message).toContain('put the work dir on the same filesystem as the source tree');
    } finally {
      await shm.cleanup();
    }
  });
});
