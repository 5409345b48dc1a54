import { execFileSync } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { parseDepFile } from '../../src/orchestrator/views/recompile.js';

/** Writes each `relative path → text` under `root`, making directories as needed. */
export async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), text);
  }
}

export interface MiniBuild {
  src: string;
  build: string;
  tmp: DirectoryResult;
}

export interface MiniObject {
  object: string;
  source: string;
  /** Compiler flags before `-c` (include dirs, defines), given the tree's path. */
  flags: (src: string) => string;
  /** A second command that rewrites the object in place, as objtool does (`objcopy …`). */
  then?: string;
  /** The headers kbuild recorded, relative to the tree; default: what gcc's dependency file lists. */
  deps?: string[];
  /** Extra lines of the deps list as kbuild writes them (`$(wildcard include/config/X)`). */
  extraDepLines?: string[];
}

/**
 * A miniature out-of-tree kbuild build: a source tree, a build dir linking
 * to it with BUILD/source, and per object the command run with cwd = build
 * dir and the `.o.cmd` file kbuild would have recorded for it.
 */
export async function miniKbuild(
  files: Record<string, string>,
  objects: readonly MiniObject[],
  extra?: (src: string) => Promise<void>,
): Promise<MiniBuild> {
  const tmp = await dir({ unsafeCleanup: true });
  const src = path.join(tmp.path, 'linux');
  const build = path.join(tmp.path, 'build');
  await writeTree(src, { Makefile: '', ...files });
  await extra?.(src);
  await mkdir(build, { recursive: true });
  await writeFile(path.join(build, 'Makefile'), `include ${src}/Makefile\n`);
  await symlink(src, path.join(build, 'source'));
  for (const o of objects) {
    await mkdir(path.join(build, path.dirname(o.object)), { recursive: true });
    const depFile = `${path.dirname(o.object)}/.${path.basename(o.object)}.d`;
    const command = `gcc -Wp,-MMD,${depFile} ${o.flags(src)} -D__KERNEL__ -fmacro-prefix-map=${src}/= -O2 -c -o ${o.object} ${src}/${o.source}${o.then ? `   ; ${o.then}` : ''}`;
    execFileSync('sh', ['-c', command], { cwd: build });
    const deps = o.deps
      ? o.deps.map((d) => `${src}/${d}`)
      : parseDepFile(await readFile(path.join(build, depFile), 'utf8')).filter((d) => d !== `${src}/${o.source}`);
    const cmd = [
      `cmd_${o.object} := ${command}`,
      '',
      `source_${o.object} := ${src}/${o.source}`,
      '',
      `deps_${o.object} := \\`,
      ...deps.map((d) => `  ${d} \\`),
      ...(o.extraDepLines ?? []).map((l) => `    ${l} \\`),
      '',
      `${o.object}: $(deps_${o.object})`,
      '',
    ].join('\n');
    await writeFile(path.join(build, path.dirname(o.object), `.${path.basename(o.object)}.cmd`), cmd);
  }
  return { src, build, tmp };
}

/** A patch file written beside the miniature build. */
export async function patchFileIn(mini: MiniBuild, name: string, text: string): Promise<string> {
  const p = path.join(mini.tmp.path, name);
  await writeFile(p, text);
  return p;
}

/** A fresh work dir beside the miniature build (on its filesystem, as the view needs). */
export async function workDirIn(mini: MiniBuild): Promise<string> {
  return (await dir({ tmpdir: mini.tmp.path })).path;
}
