import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { IndexedObject } from '../kbuild/build-index.js';
import { OrchestratorError } from '../errors.js';
import type { Runner } from '../runners/runner.js';

/**
 * Replays kbuild's recorded command for one object against the patched view,
 * writing only under the output dir. The command stays as kbuild wrote it
 * (same flags, same objtool pass, cwd = build dir for ./include/generated and
 * ./tools/objtool) with three kinds of paths swapped:
 *   - the source tree → the view, everywhere, so -I, -include, the source and
 *     -fmacro-prefix-map all move together and __FILE__ strings do not change;
 *   - the object (gcc -o and objtool's argument) → OUT/dir/NAME.o;
 *   - the -Wp,-MMD dep file → OUT/dir/.NAME.o.d.
 */

export interface RecompileOptions {
  buildDir: string;
  /** The source tree path as the recorded commands spell it (BuildIndex.recordedSourceDir). */
  recordedSourceDir: string;
  /** The patched copy of the source tree. */
  viewRoot: string;
  /** Objects are written to OUT/<object path>. */
  outDir: string;
  runner: Runner;
  /** Flags added after the recorded ones (so they win over them), before -c. */
  extraFlags?: readonly string[];
  /** Searched before every recorded include dir (e.g. klpforge's kpatch-compatible macros). */
  extraIncludeDirs?: readonly string[];
  /** What the compile is and what to do when it fails, for the message (default: the patched compile). */
  purpose?: { what: string; remedy: string };
}

export interface RecompiledObject {
  object: string;
  /** Absolute path of the new object. */
  output: string;
  /** What gcc and objtool printed on success (warnings), view paths shown relative to the tree. */
  diagnostics: string;
  /** gcc's dependency file for the new object (OUT/dir/.NAME.o.d): every file the compile read. */
  depFile: string;
}

const SAFE_WORD = /^[\w@%+=:,./-]+$/;
export function shellQuote(s: string): string {
  return SAFE_WORD.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Replaces `word` where it stands as a whole shell word; returns the new text and how many were replaced. */
function replaceWord(text: string, word: string, by: string): [string, number] {
  let n = 0;
  const out = text.replace(new RegExp(`(?<=^|\\s)${escapeRegExp(word)}(?=\\s|$)`, 'g'), () => {
    n++;
    return by;
  });
  return [out, n];
}

export function depFileFor(object: string): string {
  const dir = path.posix.dirname(object);
  const name = `.${path.posix.basename(object)}.d`;
  return dir === '.' ? name : `${dir}/${name}`;
}

/** The recorded command, rewritten as described above. Throws ORCH_UNSUPPORTED_COMMAND on a shape it cannot make safe. */
export function rewriteCommand(
  record: Pick<IndexedObject, 'object' | 'command'>,
  o: Omit<RecompileOptions, 'runner' | 'buildDir'>,
): string {
  const unsupported = (why: string): OrchestratorError =>
    new OrchestratorError(
      'ORCH_UNSUPPORTED_COMMAND',
      `${record.object}: cannot replay its kbuild command (${why}): report this to klpforge with the object's .cmd file`,
    );

  const src = o.recordedSourceDir.replace(/\/+$/, '');
  let cmd = record.command.replace(new RegExp(`${escapeRegExp(src)}(?=[/\\s'"]|$)`, 'g'), shellQuote(o.viewRoot));

  const outObject = path.join(o.outDir, record.object);
  const [withObject, objectRefs] = replaceWord(cmd, record.object, shellQuote(outObject));
  if (objectRefs === 0) throw unsupported(`no '-o ${record.object}'`);
  cmd = withObject;

  const depFile = depFileFor(record.object);
  cmd = cmd.replace(
    new RegExp(`(-Wp,-MM?D,)${escapeRegExp(depFile)}(?=\\s|$)`, 'g'),
    (_m, flag: string) => `${flag}${shellQuote(path.join(o.outDir, depFile))}`,
  );

  // Anything else that names a build-dir output (temp files, redirections) would write into the user's build.
  const tmpPrefix = `${path.posix.dirname(record.object)}/.tmp_`;
  if (new RegExp(`(?<=^|\\s)${escapeRegExp(depFile)}(?=\\s|$)`).test(cmd) || cmd.includes(tmpPrefix) || /(^|\s)\d*>/.test(cmd)) {
    throw unsupported('it writes files other than the object and its dep file');
  }

  // Extra flags go into the compile (the first command), not objtool's.
  const sep = cmd.indexOf(' ; ');
  let compile = sep < 0 ? cmd : cmd.slice(0, sep);
  const rest = sep < 0 ? '' : cmd.slice(sep);
  const firstOption = compile.search(/\s-/);
  if (firstOption < 0) throw unsupported('no compiler options');
  // Debug info names the user's tree, not the temporary view, as the original object does.
  let early = ` -fdebug-prefix-map=${shellQuote(o.viewRoot)}=${shellQuote(src)}`;
  early += (o.extraIncludeDirs ?? []).map((d) => ` -I ${shellQuote(path.resolve(d))}`).join('');
  compile = compile.slice(0, firstOption) + early + compile.slice(firstOption);
  if (o.extraFlags?.length) {
    const dashC = compile.search(/\s-c\s/);
    if (dashC < 0) throw unsupported("no '-c'");
    compile = `${compile.slice(0, dashC)} ${o.extraFlags.map(shellQuote).join(' ')}${compile.slice(dashC)}`;
  }
  return compile + rest;
}

export async function recompileObject(record: IndexedObject, o: RecompileOptions): Promise<RecompiledObject> {
  const command = rewriteCommand(record, o);
  const output = path.join(o.outDir, record.object);
  await mkdir(path.dirname(output), { recursive: true });
  const r = await o.runner.run(['sh', '-c', command], { cwd: o.buildDir });
  const shown = (s: string): string => s.replaceAll(`${o.viewRoot}/`, '');
  if (r.exitCode !== 0) {
    const text = shown(`${r.stderr}\n${r.stdout}`);
    // A compiler that could not write its output failed for want of space, not because of the patch.
    const remedy = /No space left on device|Disk quota exceeded/.test(text)
      ? `the filesystem of ${o.outDir} is full: free space there`
      : (o.purpose?.remedy ?? 'fix the patch so it compiles');
    throw new OrchestratorError(
      'ORCH_COMPILE_FAILED',
      `${record.object}: ${o.purpose?.what ?? 'recompiling with the patch'} failed (exit ${r.exitCode}): ${remedy}\n${relevantLines(text)}`,
    );
  }
  return {
    object: record.object,
    output,
    diagnostics: shown(`${r.stderr}${r.stdout}`).trim(),
    depFile: path.join(o.outDir, depFileFor(record.object)),
  };
}

/**
 * The prerequisites of a make-syntax dependency file as gcc -MD writes it
 * (`target: dep dep \` lines; spaces in names escaped as `\ `, `$` as `$$`).
 */
export function parseDepFile(text: string): string[] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const deps: string[] = [];
  for (const line of joined.split('\n')) {
    const colon = line.search(/:(\s|$)/);
    if (colon < 0) continue;
    const words = line.slice(colon + 1).match(/(?:\\.|[^\s\\])+/g) ?? [];
    for (const w of words) deps.push(w.replace(/\$\$/g, '$').replace(/\\(.)/g, '$1'));
  }
  return [...new Set(deps)];
}

const MAX_LINES = 30;

/**
 * gcc's errors with their context (the "In function" line, the quoted source
 * and caret lines that follow): warnings from unrelated headers are noise here.
 */
export function relevantLines(text: string): string {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const keep = new Set<number>();
  lines.forEach((line, i) => {
    if (!/\b(error|fatal error)\b|\bError\b/.test(line)) return;
    if (i > 0 && /In function|In file included from/.test(lines[i - 1]!)) keep.add(i - 1);
    keep.add(i);
    // gcc follows an error with the source line, the caret line and notes, all indented or ' | '-ruled.
    for (let j = i + 1; j < lines.length && /^\s|^\s*\d* \|/.test(lines[j]!); j++) keep.add(j);
  });
  const picked = keep.size > 0 ? [...keep].sort((a, b) => a - b).map((i) => lines[i]!) : lines;
  return picked.length > MAX_LINES
    ? [...picked.slice(0, MAX_LINES), `... (${picked.length - MAX_LINES} more lines)`].join('\n')
    : picked.join('\n');
}
