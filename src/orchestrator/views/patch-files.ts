/**
 * Which files a unified diff touches, read from its headers the way
 * `patch -p1` would: git diffs (`diff --git a/X b/Y`, new/deleted/renamed
 * files), plain `diff -u`/quilt diffs (`--- a/X<TAB>date` / `+++ b/X`).
 * Hunk bodies are kept per file so a rejected hunk can be shown to the user.
 */

export type FileChangeKind = 'modified' | 'added' | 'deleted' | 'renamed' | 'copied';

export interface PatchFileChange {
  /** Path after -p1 stripping: the file as it is after the patch (for deletions, the file removed). */
  path: string;
  kind: FileChangeKind;
  /** For renames and copies: the path before. */
  from?: string;
  /** The hunks (`@@ ... @@` and their lines), in order, for error messages. */
  hunks: string[];
}

/** Strips the first component, as patch -p1 does: `a/fs/x.c` → `fs/x.c`. */
export function stripOne(p: string): string {
  const slash = p.indexOf('/');
  return slash < 0 ? p : p.slice(slash + 1);
}

/** Git quotes paths with unusual bytes in C style: `"a/caf\303\251.c"`. */
export function unquoteGitPath(p: string): string {
  if (!p.startsWith('"') || !p.endsWith('"')) return p;
  const bytes: number[] = [];
  const body = p.slice(1, -1);
  const simple: Record<string, number> = { n: 10, t: 9, '"': 34, '\\': 92, a: 7, b: 8, f: 12, r: 13, v: 11 };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const next = body[i + 1] ?? '';
    if (/[0-7]/.test(next)) {
      bytes.push(parseInt(body.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(simple[next] ?? next.charCodeAt(0));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `--- a/fs/x.c\t2024-01-01 ...` → `a/fs/x.c`; null for /dev/null. */
function headerPath(rest: string): string | null {
  let p = rest;
  const quoted = /^"(?:[^"\\]|\\.)*"/.exec(p);
  if (quoted) {
    p = unquoteGitPath(quoted[0]);
  } else {
    const tab = p.indexOf('\t');
    if (tab >= 0) p = p.slice(0, tab);
    p = p.trimEnd();
  }
  return p === '/dev/null' ? null : p;
}

/** `diff --git a/X b/X` → [a/X, b/X] when unambiguous (identical names after the prefix). */
function gitDiffPaths(rest: string): [string, string] | null {
  if (rest.startsWith('"')) {
    const m = /^("(?:[^"\\]|\\.)*")\s+(.*)$/.exec(rest);
    return m ? [unquoteGitPath(m[1]!), unquoteGitPath(m[2]!)] : null;
  }
  // Without quotes the split is ambiguous if names contain " b/"; git's own rule: both halves name the same file.
  const half = (rest.length - 1) / 2;
  if (Number.isInteger(half) && rest[half] === ' ' && stripOne(rest.slice(0, half)) === stripOne(rest.slice(half + 1))) {
    return [rest.slice(0, half), rest.slice(half + 1)];
  }
  const m = /^(\S+) (\S+)$/.exec(rest);
  return m ? [m[1]!, m[2]!] : null;
}

interface Building {
  oldPath: string | null;
  newPath: string | null;
  kind: FileChangeKind | null;
  hunks: string[];
}

export function parsePatchFiles(text: string): PatchFileChange[] {
  const lines = text.split('\n');
  const out: PatchFileChange[] = [];
  let cur: Building | null = null;
  // Lines left in the current hunk; hunk bodies can contain lines starting with '--- '.
  let oldLeft = 0;
  let newLeft = 0;

  const finish = (): void => {
    if (!cur) return;
    const after = cur.newPath ?? cur.oldPath;
    if (after !== null) {
      const kind: FileChangeKind = cur.kind ?? (cur.oldPath === null ? 'added' : cur.newPath === null ? 'deleted' : 'modified');
      const change: PatchFileChange = { path: stripOne(after), kind, hunks: cur.hunks };
      if ((kind === 'renamed' || kind === 'copied') && cur.oldPath !== null) change.from = stripOne(cur.oldPath);
      out.push(change);
    }
    cur = null;
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (oldLeft > 0 || newLeft > 0) {
      const body = cur!.hunks[cur!.hunks.length - 1]!;
      cur!.hunks[cur!.hunks.length - 1] = `${body}\n${line}`;
      const c = line[0];
      if (c === '-') oldLeft--;
      else if (c === '+') newLeft--;
      else if (c === ' ' || line === '') {
        oldLeft--;
        newLeft--;
      }
      // '\ No newline at end of file' counts for neither side.
      continue;
    }
    if (line.startsWith('diff --git ')) {
      finish();
      const paths = gitDiffPaths(line.slice('diff --git '.length));
      cur = { oldPath: paths?.[0] ?? null, newPath: paths?.[1] ?? null, kind: null, hunks: [] };
    } else if (line.startsWith('--- ') && lines[i + 1]?.startsWith('+++ ')) {
      // A git diff announces its paths before '---'; anything else starts a new file here.
      const inGitHeader = cur !== null && cur.hunks.length === 0;
      if (!inGitHeader) {
        finish();
        cur = { oldPath: null, newPath: null, kind: null, hunks: [] };
      }
      cur!.oldPath = headerPath(line.slice(4));
      cur!.newPath = headerPath(lines[i + 1]!.slice(4));
      i++;
    } else if (cur && line.startsWith('new file mode')) {
      cur.kind = 'added';
      cur.oldPath = null;
    } else if (cur && line.startsWith('deleted file mode')) {
      cur.kind = 'deleted';
      cur.newPath = null;
    } else if (cur && line.startsWith('rename from ')) {
      cur.kind = 'renamed';
      cur.oldPath = `a/${unquoteGitPath(line.slice('rename from '.length))}`;
    } else if (cur && line.startsWith('rename to ')) {
      cur.newPath = `b/${unquoteGitPath(line.slice('rename to '.length))}`;
    } else if (cur && line.startsWith('copy from ')) {
      cur.kind = 'copied';
      cur.oldPath = `a/${unquoteGitPath(line.slice('copy from '.length))}`;
    } else if (cur && line.startsWith('copy to ')) {
      cur.newPath = `b/${unquoteGitPath(line.slice('copy to '.length))}`;
    } else if (cur && line.startsWith('@@ ')) {
      const m = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
      if (!m) continue;
      oldLeft = m[1] === undefined ? 1 : Number(m[1]);
      newLeft = m[2] === undefined ? 1 : Number(m[2]);
      cur.hunks.push(line);
    }
  }
  finish();
  return out;
}

/** Every source-tree path a change reads or writes: both ends of a rename. */
export function touchedPaths(changes: readonly PatchFileChange[]): string[] {
  const seen = new Set<string>();
  for (const c of changes) {
    if (c.from !== undefined) seen.add(c.from);
    seen.add(c.path);
  }
  return [...seen];
}
