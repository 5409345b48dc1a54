import { parsePatchFiles, stripOne, touchedPaths, unquoteGitPath } from '../../src/orchestrator/views/patch-files.js';

describe('parsePatchFiles', () => {
  test('a plain diff -u with timestamps: one modified file, -p1 stripped, hunk text kept', () => {
    const patch = [
      'Some description in the mail body',
      '--- linux-6.1.orig/fs/proc/cmdline.c\t2024-01-01 00:00:00.000000000 +0000',
      '+++ linux-6.1/fs/proc/cmdline.c\t2024-01-02 00:00:00.000000000 +0000',
      '@@ -9,2 +9,2 @@',
      '-\tseq_puts(m, saved_command_line);',
      '+\tseq_printf(m, "%s", saved_command_line);',
      " \tseq_putc(m, '\\n');",
      '',
    ].join('\n');
    const files = parsePatchFiles(patch);
    expect(files).toEqual([
      {
        path: 'fs/proc/cmdline.c',
        kind: 'modified',
        hunks: [
          '@@ -9,2 +9,2 @@\n-\tseq_puts(m, saved_command_line);\n+\tseq_printf(m, "%s", saved_command_line);\n \tseq_putc(m, \'\\n\');',
        ],
      },
    ]);
  });

  test('git diffs: new, deleted, renamed (with and without content change) and mode-only files', () => {
    const patch = `diff --git a/include/linux/new.h b/include/linux/new.h
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/include/linux/new.h
@@ -0,0 +1 @@
+#define NEW 1
diff --git a/fs/old.c b/fs/old.c
deleted file mode 100644
index 2222222..0000000
--- a/fs/old.c
+++ /dev/null
@@ -1 +0,0 @@
-int old;
diff --git a/fs/a.c b/fs/b.c
similarity index 100%
rename from fs/a.c
rename to fs/b.c
diff --git a/fs/c.c b/fs/d.c
similarity index 90%
rename from fs/c.c
rename to fs/d.c
index 3333333..4444444 100644
--- a/fs/c.c
+++ b/fs/d.c
@@ -1 +1 @@
-int c;
+int d;
diff --git a/scripts/x.sh b/scripts/x.sh
old mode 100644
new mode 100755
`;
    const files = parsePatchFiles(patch).map(({ hunks, ...rest }) => ({ ...rest, hunks: hunks.length }));
    expect(files).toEqual([
      { path: 'include/linux/new.h', kind: 'added', hunks: 1 },
      { path: 'fs/old.c', kind: 'deleted', hunks: 1 },
      { path: 'fs/b.c', kind: 'renamed', from: 'fs/a.c', hunks: 0 },
      { path: 'fs/d.c', kind: 'renamed', from: 'fs/c.c', hunks: 1 },
      { path: 'scripts/x.sh', kind: 'modified', hunks: 0 },
    ]);
    expect(touchedPaths(parsePatchFiles(patch))).toEqual([
      'include/linux/new.h',
      'fs/old.c',
      'fs/a.c',
      'fs/b.c',
      'fs/c.c',
      'fs/d.c',
      'scripts/x.sh',
    ]);
  });

  test("hunk lines that look like headers ('--- ' removed lines) stay in the hunk", () => {
    const patch = [
      '--- a/Documentation/x.rst',
      '+++ b/Documentation/x.rst',
      '@@ -1,3 +1,2 @@',
      ' title',
      '--- underline removed',
      '+++ not a header either',
      ' end',
      '--- a/fs/y.c',
      '+++ b/fs/y.c',
      '@@ -1 +1 @@',
      '-a',
      '+b',
      '',
    ].join('\n');
    const files = parsePatchFiles(patch);
    expect(files.map((f) => f.path)).toEqual(['Documentation/x.rst', 'fs/y.c']);
    expect(files[0]!.hunks[0]).toContain('--- underline removed');
  });

  test('git-quoted paths are decoded', () => {
    expect(unquoteGitPath('"a/caf\\303\\251 x.c"')).toBe('a/café x.c');
    const patch =
      'diff --git "a/fs/caf\\303\\251.c" "b/fs/caf\\303\\251.c"\n--- "a/fs/caf\\303\\251.c"\n+++ "b/fs/caf\\303\\251.c"\n@@ -1 +1 @@\n-a\n+b\n';
    expect(parsePatchFiles(patch).map((f) => f.path)).toEqual(['fs/café.c']);
  });

  test('stripOne removes whatever the first component is, like patch -p1', () => {
    expect(stripOne('a/fs/x.c')).toBe('fs/x.c');
    expect(stripOne('linux-6.1/fs/x.c')).toBe('fs/x.c');
  });

  test('text without diff headers has no changes', () => {
    expect(parsePatchFiles('just a mail\nwith no diff\n')).toEqual([]);
  });
});
