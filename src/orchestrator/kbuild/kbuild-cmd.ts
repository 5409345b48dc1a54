import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { OrchestratorError } from '../errors.js';

/**
 * kbuild's per-object record (BUILD/dir/.NAME.o.cmd), written by fixdep:
 *
 *   cmd_dir/NAME.o := gcc -Wp,-MMD,dir/.NAME.o.d ... -c -o dir/NAME.o /srctree/dir/NAME.c   ; ./tools/objtool/objtool ... dir/NAME.o
 *
 *   source_dir/NAME.o := /srctree/dir/NAME.c
 *
 *   deps_dir/NAME.o := \
 *     /srctree/include/linux/fs.h \
 *       $(wildcard include/config/SMP) \
 *     include/generated/autoconf.h \
 *
 * The command is the exact line make ran (cwd = build dir), so recompiling
 * with it reproduces the original object bit for bit, flags and all.
 */
export interface KbuildCompileRecord {
  /** Object path relative to the build dir, e.g. `fs/proc/cmdline.o`. */
  object: string;
  /** Shell command line as make ran it (make's `$$` and `$(pound)` escapes undone). */
  command: string;
  /** Source as recorded: absolute for source-tree files, build-dir relative for generated ones. */
  source: string;
  /** Files the compile read, as recorded (absolute or build-dir relative); `$(wildcard ...)` entries dropped. */
  deps: string[];
}

/**
 * A .cmd file either records a compile (it has `source_`), or something else
 * kbuild also tracks: links (`ld -r`), host tools built by their own makefiles
 * (tools/objtool records absolute object paths). Only compiles can be replayed.
 */
export type KbuildCmdFile = { kind: 'compile'; record: KbuildCompileRecord } | { kind: 'other'; reason: string };

/** `fs/proc/.cmdline.o.cmd` → `fs/proc/cmdline.o`; null for any other file name. */
export function objectForCmdFile(relCmdFile: string): string | null {
  const base = path.posix.basename(relCmdFile);
  if (!base.startsWith('.') || !base.endsWith('.o.cmd')) return null;
  const dir = path.posix.dirname(relCmdFile);
  const name = base.slice(1, -'.cmd'.length);
  return dir === '.' ? name : `${dir}/${name}`;
}

/** Undoes kbuild's make-cmd escaping (`$` → `$$`, then `#` → `$(pound)`), left to right so `$$(pound)` stays literal. */
export function unescapeMakeCmd(s: string): string {
  return s.replace(/\$\$|\$\(pound\)/g, (m) => (m === '$$' ? '$' : '#'));
}

const WILDCARD = /^\$\(wildcard [^)]*\)$/;

/**
 * Parses one .cmd file. `expectedObject` is the object its location implies
 * (objectForCmdFile); a record for another path (tools/ builds record absolute
 * paths) is not a kbuild compile of this tree and is returned as `other`.
 * `fileForErrors` names the file in error messages.
 */
export function parseKbuildCmd(text: string, expectedObject: string, fileForErrors: string): KbuildCmdFile {
  const lines = text.split('\n');
  let command: string | undefined;
  let source: string | undefined;
  const deps: string[] = [];
  // A module may build a file of another directory (kvm.ko: `arch/x86/kvm/../../../virt/kvm/kvm_main.o`):
  // kbuild then records the object under that spelling, which names the same file.
  const spelled = recordedSpelling(lines[0] ?? '', expectedObject);
  const cmdPrefix = `cmd_${spelled} := `;
  const sourcePrefix = `source_${spelled} := `;
  const depsHeader = `deps_${spelled} := \\`;

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith(cmdPrefix)) {
      command = unescapeMakeCmd(line.slice(cmdPrefix.length)).trim();
    } else if (line.startsWith(sourcePrefix)) {
      source = line.slice(sourcePrefix.length).trim();
    } else if (line === depsHeader) {
      // One dependency per continuation line; the list ends at the first line without a trailing backslash.
      for (i++; i < lines.length; i++) {
        const raw = lines[i]!;
        const continued = raw.endsWith('\\');
        const entry = (continued ? raw.slice(0, -1) : raw).trim();
        if (entry !== '' && !WILDCARD.test(entry)) deps.push(entry);
        if (!continued) break;
      }
    }
  }

  if (command === undefined) {
    return { kind: 'other', reason: text.startsWith('cmd_') ? 'records a command for another path' : 'records no kbuild command' };
  }
  if (source === undefined) return { kind: 'other', reason: 'records no source file (a link, not a compile)' };
  if (source === '') {
    throw new OrchestratorError(
      'ORCH_BAD_CMD_FILE',
      `${fileForErrors}: empty source_ line; the build directory looks damaged: rebuild it with make`,
    );
  }
  // Replayed commands name the object (and its dep and temporary files) as the index does: the spelled
  // directory is the same directory. Only build-relative paths: the source's own spelling stays, since
  // it is what __FILE__ expands to (WARN and BUG records name it), and the original object has it.
  if (spelled !== expectedObject) {
    const dir = path.posix.dirname(spelled).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    command = command.replace(new RegExp(`(?<![\\w/.-])${dir}/`, 'g'), `${path.posix.dirname(expectedObject)}/`);
  }
  return { kind: 'compile', record: { object: expectedObject, command, source, deps } };
}

/** The object's path as the .cmd file's first line spells it, when that spelling normalises to the expected path. */
function recordedSpelling(firstLine: string, expectedObject: string): string {
  const m = /^(?:saved)?cmd_(\S+) := /.exec(firstLine);
  if (!m || m[1] === expectedObject || !m[1]!.includes('..')) return expectedObject;
  return path.posix.normalize(m[1]!) === expectedObject ? m[1]! : expectedObject;
}

/**
 * The command kbuild recorded for an object, read from the `.NAME.o.cmd` file
 * beside it, or undefined when there is none (an object from elsewhere).
 */
export async function recordedCommandBeside(objectFile: string): Promise<string | undefined> {
  const cmdFile = path.join(path.dirname(objectFile), `.${path.basename(objectFile)}.cmd`);
  let text: string;
  try {
    text = await readFile(cmdFile, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^cmd_\S+ := (.*)$/m.exec(text);
  return m ? unescapeMakeCmd(m[1]!) : undefined;
}
