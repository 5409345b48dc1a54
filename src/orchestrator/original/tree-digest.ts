import { createHash } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { SetupError } from '../setup-errors.js';

/**
 * A fast digest of a source tree, for the original-build cache key: every
 * entry's relative path, size, mtime (ns), mode and, for symlinks, target;
 * `.git` directories are skipped (history is not source).
 *
 * Trade-off: metadata, not contents. A 6.1 tree is ~80,000 files / 1.2 GB;
 * listing them takes under a second, hashing them all would read the whole
 * tree (tens of seconds when not in the page cache). Any edit, checkout,
 * unpack or `touch` changes a size or an mtime, so the key changes and the
 * original is rebuilt: safe, at worst an unneeded rebuild. What it misses is a
 * content change that keeps the size and the mtime to the nanosecond, which
 * takes a deliberate `touch -d`/`touch -r` or a tool that restores timestamps
 * after writing. Unpacking the same tarball again gives the same digest (tar
 * restores mtimes), so a re-unpacked tree still hits.
 *
 * The digest is of relative paths: where the tree is goes into the cache key
 * separately (kbuild records absolute source paths in every command).
 */
export interface TreeDigest {
  digest: string;
  /** Entries (files, dirs, links) digested. */
  entries: number;
}

/**
 * GNU find walks, GNU sort orders: both in C, in processes of their own, so
 * the walk of ~80,000 entries (0.6 s) runs on another core while this
 * process keeps compiling and diffing (the build overlaps the key's
 * computation with its patched side). One NUL-terminated record per entry:
 * the relative path, a tab, then the type and what is digested for it. A
 * directory's size and mtime are left out: they only restate its entries, and
 * an editor's swap file come and gone would otherwise change the key.
 * Sorted bytewise (LC_ALL=C), so the walk's order does not matter.
 */
const FIND_ARGS = [
  '.',
  '-mindepth',
  '1',
  '-name',
  '.git',
  '-prune',
  '-o',
  '-type',
  'd',
  '-printf',
  '%P\\td %m\\0',
  '-o',
  '-type',
  'l',
  '-printf',
  '%P\\tl %l\\0',
  '-o',
  '-printf',
  '%P\\t%y %s %T@ %m\\0',
];

export async function digestTree(root: string): Promise<TreeDigest> {
  // find's stdout is handed to sort as its stdin: the records never pass through this process unsorted.
  const find = spawn('find', FIND_ARGS, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const sort = spawn('sort', ['-z'], { env: { ...process.env, LC_ALL: 'C' }, stdio: [find.stdout, 'pipe', 'pipe'] });
  find.stdout.destroy(); // sort holds the pipe now; this process never reads it
  const hash = createHash('sha256');
  let entries = 0;
  sort.stdout.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    for (let at = chunk.indexOf(0); at >= 0; at = chunk.indexOf(0, at + 1)) entries++;
  });
  const [walked, sorted] = await Promise.all([finished(find, 'find'), finished(sort, 'sort')]);
  const failed = [walked, sorted].find((r) => r.code !== 0);
  if (failed)
    throw new SetupError(
      'SOURCE_NOT_USABLE',
      `${root}: cannot walk the source tree (${failed.what} exit ${failed.code ?? failed.signal}: ${failed.stderr.trim()})`,
    );
  return { digest: hash.digest('hex'), entries };
}

interface Finished {
  what: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function finished(child: ChildProcess, what: string): Promise<Finished> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  return new Promise((resolve) => {
    child.on('error', (e) => resolve({ what, code: -1, signal: null, stderr: e.message }));
    child.on('close', (code, signal) => resolve({ what, code, signal, stderr }));
  });
}
