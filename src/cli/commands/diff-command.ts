import { diffObjects, type DiffResult, specialSections } from '../../diff/index.js';
import { readElfFile, writeElfFile } from '../../elf/index.js';
import { MACHINES } from '../../diff/arch/machines.js';
import { recordedCommandBeside } from '../../orchestrator/kbuild/kbuild-cmd.js';
import { KlpforgeError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';

export interface DiffCommandArgs {
  orig: string;
  patched: string;
  output?: string;
  json: boolean;
  entrySize: string[];
}

/** `--entry-size NAME=N` and kpatch's environment names (handled in the engine) for special-section entry sizes. */
function parseEntrySizes(specs: string[]): Map<string, number> {
  // Checked before the objects are read: a name any machine's table has is accepted.
  const known = new Set([...MACHINES.keys()].flatMap((m) => specialSections(m).map((d) => d.name)));
  const sizes = new Map<string, number>();
  for (const spec of specs) {
    const m = /^([^=]+)=(\d+)$/.exec(spec);
    if (!m || Number(m[2]) <= 0)
      throw new KlpforgeError('USAGE', `--entry-size ${spec}: expected SECTION=BYTES, e.g. __bug_table=12`, EXIT.USAGE);
    if (!known.has(m[1]!))
      throw new KlpforgeError(
        'USAGE',
        `--entry-size ${spec}: ${m[1]} is not a special section klpforge knows (${[...known].join(', ')})`,
        EXIT.USAGE,
      );
    sizes.set(m[1]!, Number(m[2]));
  }
  return sizes;
}

const EXIT_FOR = { changed: EXIT.OK, 'no-change': EXIT.NO_CHANGE, unsupported: EXIT.UNSUPPORTED } as const;

/** `klpforge diff ORIG.o PATCHED.o`: exit 0 changes, 3 nothing changed, 2 refused, 1 bad input (kpatch's codes). */
export async function diffCommand(args: DiffCommandArgs, out: (line: string) => void): Promise<number> {
  const sizes = parseEntrySizes(args.entrySize);
  const [orig, patched] = await Promise.all([readElfFile(args.orig), readElfFile(args.patched)]);
  const result = diffObjects(orig, patched, {
    entrySizes: sizes,
    compilerFlags: await recordedCommandBeside(args.orig),
    output: !!args.output,
  });
  if (args.output && result.output) {
    const file = args.output;
    await writeElfFile(file, result.output).catch((e: NodeJS.ErrnoException) => {
      if (e.code === undefined) throw e;
      throw new KlpforgeError(
        'DIFF_OUTPUT',
        `${file}: cannot write the output object (${e.code}): pass an -o/--output in a writable directory`,
        1,
      );
    });
  }
  if (args.json) out(JSON.stringify(toJson(result), null, 2));
  else printText(result, out);
  return EXIT_FOR[result.outcome];
}

function toJson(r: DiffResult) {
  return {
    outcome: r.outcome,
    changed: r.changed.map((f) => f.name),
    new: r.new.map((f) => f.name),
    errors: r.refusals.map((x) => x.message),
    warnings: r.warnings,
    notes: r.notes,
    lineOnly: r.lineOnly,
    vanished: r.vanished,
    // Where klpforge deliberately differs from kpatch: new static functions nothing calls are left out.
    leftOut: r.leftOut,
    functions: [...r.changed, ...r.new],
    refusals: r.refusals,
    callbacks: r.callbacks.map((cb) => ({ kind: cb.kind, function: cb.function })),
    included: r.included,
    externals: r.externals,
  };
}

function printText(r: DiffResult, out: (line: string) => void): void {
  for (const f of r.changed) {
    const where = f.firstDifference ? ` (at +0x${f.firstDifference.offset.toString(16)}: ${f.firstDifference.what})` : '';
    out(`changed function: ${f.name}${where}`);
    for (const part of f.parts ?? []) out(`  part: ${part}`);
    for (const o of f.optimizations) out(`  gcc: ${o}`);
  }
  for (const f of r.new) out(`new function: ${f.name}${f.parts ? ` (parts: ${f.parts.join(', ')})` : ''}`);
  for (const f of r.leftOut) out(`left out: ${f} (new, static, called by no changed function)`);
  for (const f of r.lineOnly) out(`line numbers only: ${f} (not changed)`);
  for (const cb of r.callbacks) out(`callback ${cb.kind}: ${cb.function}`);
  for (const w of r.warnings) out(`warning: ${w}`);
  for (const n of r.notes) out(`note: ${n}`);
  for (const x of r.refusals) out(`error: ${x.message}`);
  if (r.outcome === 'no-change') out('no changed functions');
}
