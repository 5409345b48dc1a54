import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects } from '../../src/diff/index.js';
import { type ElfObject, type ElfSymbol, readElfFile, serializeElf, SHF, SHN, STB, STT } from '../../src/elf/index.js';
import {
  finalizeModule,
  GeneratorError,
  KallsymsIndex,
  parseSymvers,
  patchGlobals,
  prepareObject,
  resolveSymbol,
  sectionObjectsOf,
} from '../../src/klp/index.js';
import { KERNEL_FLAGS } from '../helpers/kernel-like-diff.js';
import { compileC } from '../helpers/toolchain.js';

const run = promisify(execFile);

// Issue 11, classes 4 and 5: what one object of a patch takes from another
// object of the same patch, and what a special-section entry alone points at.

const PRELUDE = `
extern int exported_fn(int x);
`;

const EXPORTS = parseSymvers('0x00000000\texported_fn\tvmlinux\tEXPORT_SYMBOL\t\n0x00000000\t__fentry__\tvmlinux\tEXPORT_SYMBOL\t\n');

// A BUG() as x86 emits it: ud2, and a struct bug_entry { s32 bug_addr_disp; s32 file_disp; u16 line; u16 flags; }
// whose file field points at __FILE__, a string only this entry uses.
const BUG = `asm volatile("1: ud2\\n.pushsection __bug_table,\\"aw\\"\\n2: .long 1b - .\\n .long %c0 - .\\n .word %c1, 0\\n .org 2b + 12\\n.popsection" \\
  : : "i"("klpforge/bug.c"), "i"(__LINE__))`;

/** A bug_entry-like record whose second field points at anonymous data of the given section flags, itself pointing at a string. */
const ENTRY_TO = (section: string, flags: string) => `asm volatile("1: ud2\\n"
  ".pushsection .rodata.str1.1,\\"aMS\\",@progbits,1\\n3: .string \\"klpforge-name\\"\\n.popsection\\n"
  ".pushsection ${section},\\"${flags}\\"\\n4: .quad 3b\\n.popsection\\n"
  ".pushsection __bug_table,\\"aw\\"\\n2: .long 1b - .\\n .long 4b - .\\n .word 0, 0\\n.popsection")`;

const BUG_SIZES = new Map([['__bug_table', 12]]);

describe('references inside one livepatch', () => {
  let tmp: DirectoryResult;
  let n = 0;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  /** The differ's output for `name.c` before and after (both builds of one file name, as in two kernel builds). */
  async function diffOutput(name: string, orig: string, patched: string): Promise<ElfObject> {
    const [o, p] = [path.join(tmp.path, `orig${n}`), path.join(tmp.path, `patched${n++}`)];
    await Promise.all([mkdir(o), mkdir(p)]);
    const [a, b] = await Promise.all([compileC(o, name, PRELUDE + orig, KERNEL_FLAGS), compileC(p, name, PRELUDE + patched, KERNEL_FLAGS)]);
    const r = diffObjects(await readElfFile(a), await readElfFile(b), { output: true, entrySizes: BUG_SIZES });
    expect(r.refusals).toEqual([]);
    expect(r.outcome).toBe('changed');
    return r.output!;
  }

  /** The running kernel's symbol table: the original sources linked at real addresses. */
  async function linkedKernel(sources: Record<string, string>): Promise<KallsymsIndex> {
    const dir = path.join(tmp.path, `kernel${n++}`);
    await mkdir(dir);
    const objs = await Promise.all(Object.entries(sources).map(([name, src]) => compileC(dir, name, PRELUDE + src, ['-O2', '-fno-PIE'])));
    const out = path.join(dir, 'vmlinux');
    await run('ld', ['-o', out, '-e', '0', '-Ttext=0x1000000', '--unresolved-symbols=ignore-all', ...objs]);
    return new KallsymsIndex(await readElfFile(out), 'vmlinux');
  }

  /** `ld -r` of prepared objects, as kbuild links a composite module's objects. */
  async function linkTogether(objects: ElfObject[]): Promise<ElfObject> {
    const dir = path.join(tmp.path, `module${n++}`);
    await mkdir(dir);
    const files = objects.map((_, i) => path.join(dir, `klpforge-${i}.o`));
    await Promise.all(objects.map((o, i) => writeFile(files[i]!, serializeElf(o))));
    const out = path.join(dir, 'livepatch.o');
    await run('ld', ['-r', '-o', out, ...files]);
    return readElfFile(out);
  }

  const undefinedNames = (elf: ElfObject) =>
    elf.symbols
      .filter((s) => s.shndx === SHN.UNDEF && s.reserved === 0 && s.name !== '')
      .map((s) => s.name)
      .sort();

  // fs/a.c gains a global function and a global variable its own code does not use; fs/b.c's target uses both.
  const A = 'int a_fn(int x) { return x + 1; }';
  const A_PATCHED = `${A}\nint klpforge_helper(int x) { return x * 7; }\nint klpforge_counter;`;
  const B = 'int target(int x) { return exported_fn(x); }';
  const B_PATCHED =
    'extern int klpforge_helper(int x); extern int klpforge_counter;\nint target(int x) { klpforge_counter++; return exported_fn(klpforge_helper(x)); }';

  test('a new global function and variable defined in one object and used from another resolve inside the module', async () => {
    const vmlinux = { objname: 'vmlinux', symbols: await linkedKernel({ a: A, b: B }) };
    const [a, b, alone] = await Promise.all([diffOutput('a', A, A_PATCHED), diffOutput('b', B, B_PATCHED), diffOutput('b', B, B_PATCHED)]);

    // Looked up in the running kernel alone, the new names are not found (what happened before).
    const before = prepareObject(alone, { exports: EXPORTS, vmlinux }, { object: 'fs/b.o', anchorPrefix: '__b_' });
    expect(before.problems.map((p) => p.message)).toEqual(
      expect.arrayContaining([expect.stringMatching(/needs klpforge_helper, which vmlinux does not have/)]),
    );

    const globals = patchGlobals([
      { object: 'fs/a.o', output: a },
      { object: 'fs/b.o', output: b },
    ]);
    expect(globals.problems).toEqual([]);
    expect(globals.globals.get('klpforge_helper')).toBe('fs/a.o');
    expect(globals.globals.get('klpforge_counter')).toBe('fs/a.o');
    expect(globals.globals.get('target')).toBe('fs/b.o');

    const ctx = { exports: EXPORTS, vmlinux, patchGlobals: globals.globals };
    const pa = prepareObject(a, ctx, { object: 'fs/a.o', anchorPrefix: '__a_' });
    const pb = prepareObject(b, ctx, { object: 'fs/b.o', anchorPrefix: '__b_' });
    expect([...pa.problems, ...pb.problems]).toEqual([]);
    expect(pb.functions.map((f) => f.oldName)).toEqual(['target']);
    // Plain undefined references, no klp symbol, no namespace: the module's own link defines them.
    expect(undefinedNames(pb.elf)).toEqual(['__fentry__', 'exported_fn', 'klpforge_counter', 'klpforge_helper']);
    expect(pb.namespaces).toEqual([]);
    // The defining side keeps them global, so the linker can bind the references to them.
    const defined = (name: string) => pa.elf.symbols.find((s) => s.name === name && s.shndx !== SHN.UNDEF);
    expect(defined('klpforge_helper')).toMatchObject({ bind: STB.GLOBAL, type: STT.FUNC });
    expect(defined('klpforge_counter')).toMatchObject({ bind: STB.GLOBAL, type: STT.OBJECT });

    // Linked as kbuild links the module's objects: nothing of theirs is left undefined, nothing for the post-link step to refuse.
    const linked = await linkTogether([pa.elf, pb.elf]);
    expect(undefinedNames(linked)).toEqual(['__fentry__', 'exported_fn']);
    expect(finalizeModule(linked, EXPORTS, 'livepatch-x').problems).toEqual([]);
  });

  test('a global another object of the patch defines is reached there, ahead of an export or the running kernel; a local of that name is not', async () => {
    const vmlinux = {
      objname: 'vmlinux',
      symbols: await linkedKernel({
        core: 'int exported_fn(int x) { return x; } static __attribute__((noinline)) int helper(int x) { return x * 3; } int use(int x) { return helper(x); }',
      }),
    };
    const ctx = {
      exports: EXPORTS,
      vmlinux,
      patchGlobals: new Map([
        ['exported_fn', 'fs/a.o'],
        ['helper', 'fs/a.o'],
      ]),
    };
    const need = { object: 'fs/b.o', where: 'target()' };
    expect(resolveSymbol({ ...need, name: 'exported_fn', local: false }, ctx)).toEqual({ kind: 'patch', object: 'fs/a.o' });
    expect(resolveSymbol({ ...need, name: 'helper', local: true, file: 'core.c' }, ctx)).toMatchObject({
      kind: 'klp',
      objname: 'vmlinux',
      name: 'helper',
    });
    expect(resolveSymbol({ ...need, name: 'exported_fn', local: false }, { exports: EXPORTS, vmlinux })).toEqual({ kind: 'link' });
  });

  test('two objects of one patch defining one global are refused, naming both; a weak definition gives way to the strong one', async () => {
    const [a, b] = await Promise.all([
      diffOutput(
        'a',
        A,
        `${A}\nint klpforge_helper(int x) { return x * 7; }\n__attribute__((weak)) int klpforge_weak(int x) { return x; }`,
      ),
      diffOutput(
        'c',
        'int c_fn(int x) { return x; }',
        'int c_fn(int x) { return x; }\nint klpforge_helper(int x) { return x * 9; }\nint klpforge_weak(int x) { return -x; }',
      ),
    ]);
    const r = patchGlobals([
      { object: 'fs/a.o', output: a },
      { object: 'fs/c.o', output: b },
    ]);
    expect(r.problems.map((p) => p.code)).toEqual(['DUPLICATE_GLOBAL']);
    expect(r.problems[0]!.message).toMatch(
      /^fs\/c\.o: defines global klpforge_helper, which fs\/a\.o of the same patch defines too; .*make one of them static or rename it/,
    );
    expect(r.globals.get('klpforge_weak')).toBe('fs/c.o');
    // A refusal (exit 2): the change is fine, one livepatch just can't hold both.
    expect(new GeneratorError(r.problems).exitCode).toBe(2);
  });

  /** The section a relocation's symbol stands for, and the offset it points at there. */
  function relocationTarget(elf: ElfObject, section: string, offset: bigint): { section: string; at: number } {
    const sec = elf.findSection(section)!;
    const [rel] = elf.relocationsFor(sec);
    const body = elf.sections[rel!]!.body;
    if (body.kind !== 'relocations') throw new Error(`${section} has no relocations`);
    const r = [...body.table].find((x) => x.offset === offset)!;
    const sym: ElfSymbol = elf.symbols[r.symbol]!;
    expect(sym.shndx).not.toBe(SHN.UNDEF);
    return { section: elf.sections[sym.shndx]!.name, at: Number(sym.value + r.addend) };
  }

  const stringAt = (elf: ElfObject, section: string, at: number): string => {
    const body = elf.sections[elf.findSection(section)!]!.body;
    if (body.kind !== 'bytes') throw new Error(`${section} holds no bytes`);
    return body.data.toString('latin1', at, body.data.indexOf(0, at));
  };

  const noSectionNamedUndefined = (elf: ElfObject) => expect(undefinedNames(elf).filter((s) => s.startsWith('.'))).toEqual([]);

  test("a __bug_table entry's file string is carried with the function", async () => {
    const out = await diffOutput('bug', B, `int target(int x) { if (x < 0) ${BUG}; return exported_fn(x); }`);
    noSectionNamedUndefined(out);
    // The entry's file field (offset 4) points into a copy of the string section, at the file name.
    const file = relocationTarget(out, '__bug_table', 4n);
    expect(file.section).toMatch(/^\.rodata.*\.str1\.1$/);
    expect(out.sections[out.findSection(file.section)!]!.flags & SHF.STRINGS).toBe(SHF.STRINGS);
    expect(stringAt(out, file.section, file.at)).toBe('klpforge/bug.c');
    expect(relocationTarget(out, '__bug_table', 0n).section).toBe('.text.target');

    const vmlinux = { objname: 'vmlinux', symbols: await linkedKernel({ b: B }) };
    const p = prepareObject(out, { exports: EXPORTS, vmlinux }, { object: 'fs/bug.o', anchorPrefix: '__a_' });
    expect(p.problems).toEqual([]);
    const linked = await linkTogether([p.elf]);
    expect(undefinedNames(linked)).toEqual(['__fentry__', 'exported_fn']);
  });

  test('a constant a special-section entry alone points at is carried with its own relocations', async () => {
    const out = await diffOutput(
      'desc',
      B,
      `int target(int x) { if (x < 0) ${ENTRY_TO('.rodata.klpforge_desc', 'a')}; return exported_fn(x); }`,
    );
    noSectionNamedUndefined(out);
    const desc = relocationTarget(out, '__bug_table', 4n);
    expect(desc).toEqual({ section: '.rodata.klpforge_desc', at: 0 });
    // The constant's own pointer is rewritten onto the copied string section.
    const name = relocationTarget(out, '.rodata.klpforge_desc', 0n);
    expect(stringAt(out, name.section, name.at)).toBe('klpforge-name');
  });

  test('writable data without a symbol reached only through a special-section entry is refused as changed data, naming the section', async () => {
    const [o, p] = [path.join(tmp.path, `orig${n}`), path.join(tmp.path, `patched${n++}`)];
    await Promise.all([mkdir(o), mkdir(p)]);
    const [a, b] = await Promise.all([
      compileC(o, 'state', PRELUDE + B, KERNEL_FLAGS),
      compileC(
        p,
        'state',
        `${PRELUDE}int target(int x) { if (x < 0) ${ENTRY_TO('.data.klpforge_state', 'aw')}; return exported_fn(x); }`,
        KERNEL_FLAGS,
      ),
    ]);
    const [orig, patched] = await Promise.all([readElfFile(a), readElfFile(b)]);
    const r = diffObjects(orig, patched, { output: true, entrySizes: BUG_SIZES });
    expect(r.outcome).toBe('unsupported');
    expect(r.refusals).toEqual([expect.objectContaining({ code: 'DATA_CHANGED', section: '.data.klpforge_state' })]);
  });

  test("patched module code calling another module's export gets a klp relocation applied with the patched module, not a dependency", async () => {
    const M = 'extern int input_register_device(int x);\nint target(int x) { return exported_fn(x); }';
    const M_PATCHED = 'extern int input_register_device(int x);\nint target(int x) { return exported_fn(input_register_device(x)); }';
    const exports = parseSymvers(
      '0x0\texported_fn\tvmlinux\tEXPORT_SYMBOL\t\n0x0\t__fentry__\tvmlinux\tEXPORT_SYMBOL\t\n0x0\tinput_register_device\tdrivers/input/input-core\tEXPORT_SYMBOL\t\n',
    );
    const out = await diffOutput('pcspkr', M, M_PATCHED);
    const module = { objname: 'pcspkr', symbols: await linkedKernel({ pcspkr: M }) };
    const vmlinux = { objname: 'vmlinux', symbols: await linkedKernel({ core: 'int exported_fn(int x) { return x; }' }) };
    const p = prepareObject(out, { exports, vmlinux, module }, { object: 'drivers/input/misc/pcspkr.o', anchorPrefix: '__m_' });
    expect(p.problems).toEqual([]);
    expect(undefinedNames(p.elf)).toContain('.klp.sym.input_core.input_register_device,0');
    const linked = await linkTogether([p.elf]);
    const final = finalizeModule(linked, exports, 'livepatch-x', sectionObjectsOf([p]));
    expect(final.problems).toEqual([]);
    // Applied when pcspkr loads (by then input_core, which pcspkr depends on, is loaded too).
    expect(final.klpSections.map((k) => k.name)).toEqual(expect.arrayContaining(['.klp.rela.pcspkr..text.target']));
    expect(final.klpSections.some((k) => k.name.startsWith('.klp.rela.input_core.'))).toBe(false);
  });
});
