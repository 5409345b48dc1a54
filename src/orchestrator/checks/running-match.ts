import { EM, type ElfObject, type ElfSymbol, STB, STT } from '../../elf/index.js';

/**
 * Is a recompiled original object the one the running kernel was linked
 * from? Every function it defines must be in the running vmlinux (or module)
 * with the same size: a different source version, config or compiler almost
 * always changes some function's size, and a livepatch built from such an
 * object would replace functions with code for another kernel. Sizes do not
 * depend on -ffunction-sections (st_size excludes alignment padding) but for
 * one thing: in a kernel built without it, a jump to a function of the same
 * file is resolved by the assembler, which makes it short when the target is
 * near (jmp rel8: 2 bytes instead of 5; jcc rel8: 2 instead of 6). With one
 * section per function the same jump needs a relocation and stays long. So a
 * function may be up to 3 bytes per such jmp (4 per jcc) larger here.
 * Second, code gcc aligns beyond the function's own 16 bytes (loops aligned
 * to 32 in -O3 code such as lib/zstd): its section is aligned to match, but
 * in the running kernel the function starts wherever the previous one
 * ended, 16-aligned, so each aligned spot's padding may differ by up to the
 * alignment. Such a function (section alignment above 16) may differ by up
 * to four times that alignment either way. Any other difference is a
 * mismatch.
 *
 * On s390x the original objects the differ reads are compiled with
 * klpforge's livepatch flags (machine.ts: data through the GOT), which
 * change code size; the pipeline checks a copy compiled with the kernel's
 * own code generation instead (machine.ts runningCflags), which must match
 * exactly: its assembler never shortens a branch.
 *
 * Local functions are looked up in the running kernel's STT_FILE block of
 * the object's source file (the namesake from the same file: `show_stat` of
 * fs/proc/stat.c, not another file's); modules stripped of STT_FILE symbols
 * (distribution modules are) are searched whole. Weak definitions are
 * skipped: another file's strong one may have replaced them.
 */
export interface RunningSymbols {
  label: string;
  globals: Map<string, bigint[]>;
  /** Source file basename (`stat.c`) → each of its blocks: local function name → sizes. */
  files: Map<string, Array<Map<string, bigint[]>>>;
  /** Every function by name (for files without STT_FILE blocks). */
  all: Map<string, bigint[]>;
}

export function runningSymbols(elf: ElfObject, label: string): RunningSymbols {
  const r: RunningSymbols = { label, globals: new Map(), files: new Map(), all: new Map() };
  let block: Map<string, bigint[]> | undefined;
  for (const s of elf.symbols) {
    if (s.type === STT.FILE) {
      block = new Map();
      const blocks = r.files.get(s.name);
      if (blocks) blocks.push(block);
      else r.files.set(s.name, [block]);
      continue;
    }
    if (s.type !== STT.FUNC || (s.shndx === 0 && s.reserved === 0)) continue;
    push(r.all, s.name, s.size);
    if (s.bind === STB.LOCAL) {
      if (block) push(block, s.name, s.size);
    } else push(r.globals, s.name, s.size);
  }
  return r;
}

export interface MatchProblem {
  object: string;
  symbol: string;
  compiled: bigint;
  /** Its size in the running kernel; undefined when it is not there at all. */
  running?: bigint;
  message: string;
}

/** The first function of `obj` that the running kernel does not have as compiled here, if any. */
export function firstMismatch(obj: ElfObject, object: string, running: RunningSymbols): MatchProblem | undefined {
  const sourceFile = obj.symbols.find((s) => s.type === STT.FILE)?.name;
  const funcs = obj.symbols.filter(
    (s) =>
      s.type === STT.FUNC && s.shndx !== 0 && s.bind !== STB.WEAK && s.size > 0n && !obj.sections[s.shndx]?.name.startsWith('.discard'),
  );
  const locals = funcs.filter((s) => s.bind === STB.LOCAL);
  // Several files share a basename (core.c): the block holding the most of these locals is this one's.
  const blocks = sourceFile ? (running.files.get(sourceFile) ?? []) : [];
  const block = blocks.length === 0 ? undefined : blocks.reduce((best, b) => (score(b, locals) > score(best, locals) ? b : best));
  for (const f of funcs) {
    const table = running.files.size === 0 ? running.all : f.bind === STB.LOCAL ? block : running.globals;
    const sizes = table?.get(f.name);
    const slack = sizes === undefined || sizes.includes(f.size) || obj.ident.machine !== EM.X86_64 ? 0n : relaxableBytes(obj, f);
    const align = obj.sections[f.shndx]?.addralign ?? 0n;
    const padding = align > FUNCTION_ALIGN ? 4n * align : 0n;
    if (sizes !== undefined && sizes.some((n) => n <= f.size + padding && n >= f.size - slack - padding)) continue;
    const there = sizes?.[0];
    const what =
      there === undefined
        ? `${f.name} is not in the running kernel (${running.label}${f.bind === STB.LOCAL && sourceFile ? `, among ${sourceFile}'s functions` : ''})`
        : `${f.name} is ${f.size} bytes compiled here but ${there} bytes in the running kernel (${running.label})`;
    return {
      object,
      symbol: f.name,
      compiled: f.size,
      ...(there !== undefined ? { running: there } : {}),
      message:
        `${object}: ${what}: the source, config or compiler is not the running kernel's, and a livepatch made from it would carry code for another kernel; ` +
        'use the exact source and .config of the running kernel (with --kernel debian:RELEASE klpforge fetches both)',
    };
  }
  return undefined;
}

/** x86-64 functions start 16-byte aligned (-falign-functions' default at -O2). */
const FUNCTION_ALIGN = 16n;

// x86-64: R_X86_64_PC32, R_X86_64_PLT32; jmp rel32 (E9), jcc rel32 (0F 80..8F).
const BRANCH_RELOCS = new Set([2, 4]);

/** How many bytes the assembler could have saved in `f` by making its jumps to this object's own code short. */
function relaxableBytes(obj: ElfObject, f: ElfSymbol): bigint {
  const sec = obj.sections[f.shndx];
  if (sec === undefined || sec.body.kind !== 'bytes') return 0n;
  const data = sec.body.data;
  let slack = 0n;
  for (const ri of obj.relocationsFor(f.shndx)) {
    const rel = obj.sections[ri]!.body;
    if (rel.kind !== 'relocations') continue;
    const t = rel.table;
    for (let i = 0; i < t.length; i++) {
      const at = t.offsets[i]!;
      if (at < f.value || at >= f.value + f.size || !BRANCH_RELOCS.has(t.types[i]!)) continue;
      const target = obj.symbols[t.symbols[i]!];
      if (target === undefined || (target.shndx === 0 && target.reserved === 0)) continue; // another file's: never resolved by this assembler
      const op = Number(at);
      if (data[op - 1] === 0xe9) slack += 3n;
      else if (data[op - 2] === 0x0f && ((data[op - 1] ?? 0) & 0xf0) === 0x80) slack += 4n;
    }
  }
  return slack;
}

function score(block: Map<string, bigint[]>, locals: readonly { name: string; size: bigint }[]): number {
  let n = 0;
  for (const l of locals) if (block.get(l.name)?.includes(l.size)) n++;
  return n;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}
