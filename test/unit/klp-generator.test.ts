import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects } from '../../src/diff/index.js';
import { type ElfObject, readElfFile, SHF, SHN, SHT, STT } from '../../src/elf/index.js';
import { finalizeModule, hookSource, KallsymsIndex, parseSymvers, prepareObject, type PreparedObject } from '../../src/klp/index.js';
import { compileC } from '../helpers/toolchain.js';

const run = promisify(execFile);

const KERNEL_FLAGS = [
  '-O2',
  '-ffunction-sections',
  '-fdata-sections',
  '-pg',
  '-mfentry',
  '-mrecord-mcount',
  '-fno-PIE',
  '-mcmodel=kernel',
  '-mno-red-zone',
  '-fno-asynchronous-unwind-tables',
];

// A site keyed by a static key, laid out as the kernel's x86 jump_label does (struct jump_entry: s32 code, s32 target, long key).
const JUMP_LABEL = (key: string) => `
extern struct static_key ${key};
static inline __attribute__((always_inline)) int key_on_${key}(void) {
  asm goto("1: .byte 0x0f,0x1f,0x44,0x00,0x00\\n"
           ".pushsection __jump_table, \\"aw\\"\\n .balign 8\\n"
           ".long 1b - ., %l[yes] - .\\n .quad ${key} - .\\n .popsection" : : : : yes);
  return 0;
yes:
  return 1;
}`;

const PRELUDE = `
#define noinline __attribute__((noinline))
extern int exported_fn(int x);
extern int hidden_global;
extern int printk(const char *fmt, ...);
`;

const EXPORTS = parseSymvers(
  '0x00000000\texported_fn\tvmlinux\tEXPORT_SYMBOL\t\n0x00000000\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000000\t__fentry__\tvmlinux\tEXPORT_SYMBOL\t\n',
);

describe('the generator on objects compiled here', () => {
  let tmp: DirectoryResult;
  let n = 0;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  /** Differ output for a change of `target()` in file.c. */
  async function diffOutput(orig: string, patched: string): Promise<ElfObject> {
    // Both builds of one source file: the same name, as in two kernel builds.
    const [o, p] = [path.join(tmp.path, `orig${n}`), path.join(tmp.path, `patched${n++}`)];
    await Promise.all([mkdir(o), mkdir(p)]);
    const [a, b] = await Promise.all([
      compileC(o, 'file', PRELUDE + orig, KERNEL_FLAGS),
      compileC(p, 'file', PRELUDE + patched, KERNEL_FLAGS),
    ]);
    const r = diffObjects(await readElfFile(a), await readElfFile(b), { output: true });
    expect(r.outcome).toBe('changed');
    return r.output!;
  }

  /** A linked "kernel" whose symbol table the livepatch core would search: the given sources, at real addresses. */
  async function linkedKernel(sources: Record<string, string>): Promise<KallsymsIndex> {
    const objs = [];
    const dir = path.join(tmp.path, `kernel${n++}`);
    for (const [name, src] of Object.entries(sources)) {
      await mkdir(path.join(dir, name), { recursive: true });
      objs.push(await compileC(path.join(dir, name), name.replace(/^\d+-/, ''), PRELUDE + src, ['-O2', '-fno-PIE']));
    }
    const out = path.join(dir, 'vmlinux');
    await run('ld', ['-o', out, '-e', '0', '-Ttext=0x1000000', '--unresolved-symbols=ignore-all', ...objs]);
    return new KallsymsIndex(await readElfFile(out), 'vmlinux');
  }

  /** The differ output of kernel/file.o prepared against a linked "kernel". */
  const prepareForVmlinux = (out: ElfObject, vmlinux: KallsymsIndex): PreparedObject =>
    prepareObject(
      out,
      { exports: EXPORTS, vmlinux: { objname: 'vmlinux', symbols: vmlinux } },
      { object: 'kernel/file.o', anchorPrefix: '__a_' },
    );

  const ORIG = `
static noinline int helper(int x) { return x * 3; }
int target(int x) { return helper(x) + exported_fn(x) + hidden_global; }`;
  const PATCHED = ORIG.replace('helper(x) + exported_fn(x)', 'helper(x) + exported_fn(x + 1)');

  test('exported symbols link normally; statics and unexported globals become .klp.sym with the sympos of their file', async () => {
    const out = await diffOutput(ORIG, PATCHED);
    // The kernel has two statics named helper; the patched file's is the second in address order.
    const vmlinux = await linkedKernel({
      '1-a_other': 'static noinline int helper(int x) { return x + 1; } int use_a(int x) { return helper(x); }',
      '2-file': `${ORIG}\nint hidden_global;`,
    });
    const p = prepareForVmlinux(out, vmlinux);
    expect(p.problems).toEqual([]);
    expect(p.functions).toEqual([{ oldName: 'target', sympos: 0, anchor: '__a_0' }]);
    const undef = p.elf.symbols
      .filter((s) => s.shndx === SHN.UNDEF && s.reserved === 0 && s.name !== '')
      .map((s) => s.name)
      .sort();
    expect(undef).toEqual(['.klp.sym.vmlinux.helper,2', '.klp.sym.vmlinux.hidden_global,0', '__fentry__', 'exported_fn']);
    expect(p.elf.findSection('.klpforge.diff')).toBeUndefined();
  });

  test("a function and its alias (one address, as s390 SYSCALL_DEFINE makes __s390x_sys_X of __se_sys_X) are one klp_func: two at one address corrupt the kernel's transition check", async () => {
    const alias = 'long target_alias(int x) __attribute__((alias("target")));';
    const out = await diffOutput(`${ORIG}\n${alias}`, `${PATCHED}\n${alias}`);
    // One copy of the code carrying both names.
    expect(out.sections.filter((s) => s.name.startsWith('.text.')).map((s) => s.name)).toEqual(['.text.target']);
    const names = out.symbols.filter((s) => s.type === STT.FUNC).map((s) => [s.name, out.sections[s.shndx]!.name]);
    expect(names.sort()).toEqual([
      ['target', '.text.target'],
      ['target_alias', '.text.target'],
    ]);
    const vmlinux = await linkedKernel({ '1-file': `${ORIG}\n${alias}\nint hidden_global;` });
    const p = prepareForVmlinux(out, vmlinux);
    expect(p.problems).toEqual([]);
    // The name gcc gave the section (.text.target) is the one kept.
    expect(p.functions).toEqual([{ oldName: 'target', sympos: 0, anchor: '__a_0' }]);
  });

  test('a static of a file whose name another file shares (two file.c) is told apart by its neighbours, the other locals of its file', async () => {
    const orig = `
static int file_state;
static noinline int helper(int x) { return x * 3 + file_state++; }
int target(int x) { return helper(x) + exported_fn(x); }`;
    const out = await diffOutput(orig, orig.replace('exported_fn(x)', 'exported_fn(x + 1)'));
    const other =
      'static noinline int helper(int x) { return x + 1; } static noinline int other_only(int x) { return x - 1; } int use_a(int x) { return helper(x) + other_only(x); }';
    // Both blocks are named file.c; ours is second in address order, and only ours has file_state.
    const vmlinux = await linkedKernel({ '1-file': other, '2-file': orig });
    const p = prepareForVmlinux(out, vmlinux);
    expect(p.problems).toEqual([]);
    const undef = p.elf.symbols
      .filter((s) => s.name.startsWith('.klp.sym.'))
      .map((s) => s.name)
      .sort();
    expect(undef).toEqual(['.klp.sym.vmlinux.helper,2']);

    // Neighbours that do not decide (both files have the same locals) leave it ambiguous, said with the candidates.
    const twin = await linkedKernel({ '1-file': orig.replace('int target(', 'int target_twin('), '2-file': orig });
    const fresh = await diffOutput(orig, orig.replace('exported_fn(x)', 'exported_fn(x + 1)')); // prepareObject rewrites its input
    const q = prepareObject(
      fresh,
      { exports: EXPORTS, vmlinux: { objname: 'vmlinux', symbols: twin } },
      { object: 'kernel/file.o', anchorPrefix: '__a_' },
    );
    expect(q.problems.map((x) => x.code)).toContain('AMBIGUOUS_SYMBOL');
    expect(q.problems.find((x) => x.code === 'AMBIGUOUS_SYMBOL')!.message).toMatch(/helper/);
  });

  test('a symbol the running kernel lacks is an error naming it and the function that needs it', async () => {
    const out = await diffOutput(ORIG, PATCHED);
    const vmlinux = await linkedKernel({ file: ORIG });
    const p = prepareForVmlinux(out, vmlinux);
    expect(p.problems.map((x) => x.code)).toContain('UNRESOLVED_SYMBOL');
    expect(p.problems.find((x) => x.code === 'UNRESOLVED_SYMBOL')!.message).toMatch(/kernel\/file\.o: target\(\) needs hidden_global/);
  });

  test('a jump label keyed in the patched module is refused with the way out; a tracepoint key is dropped with a warning', async () => {
    for (const [key, refused] of [
      ['my_module_key', true],
      ['__tracepoint_my_event', false],
    ] as const) {
      const orig = `${JUMP_LABEL(key)}\nint target(int x) { if (key_on_${key}()) return printk("on %d", x); return exported_fn(x); }`;
      const out = await diffOutput(orig, orig.replace('exported_fn(x)', 'exported_fn(x + 2)'));
      const moduleSymbols = await linkedKernel({ file: `struct static_key { int e; }; struct static_key ${key};\n${orig}` });
      const vmlinux = await linkedKernel({ core: 'int hidden_global;' });
      const p = prepareObject(
        out,
        {
          exports: EXPORTS,
          vmlinux: { objname: 'vmlinux', symbols: vmlinux },
          module: { objname: 'mymod', symbols: moduleSymbols },
        },
        { object: 'drivers/mymod.o', anchorPrefix: '__a_', entrySizes: new Map([['__jump_table', 16]]) },
      );
      if (refused) {
        expect(p.problems.map((x) => x.code)).toEqual(['MODULE_STATIC_KEY']);
        expect(p.problems[0]!.message).toMatch(/static_key_enabled\(\)/);
      } else {
        expect(p.problems).toEqual([]);
        expect(p.warnings.join('\n')).toMatch(/dropped a __jump_table site keyed by __tracepoint_my_event/);
        const jt = p.elf.findSection('__jump_table');
        expect(
          jt === undefined || p.elf.sections[jt]!.body.kind !== 'bytes' || (p.elf.sections[jt]!.body as { data: Buffer }).data.length === 0,
        ).toBe(true);
      }
    }
  });

  test('a static call site keyed in the patched module (a module tracepoint) is dropped: the call keeps going through the trampoline, with a klp relocation', async () => {
    const call =
      'asm volatile("1: call __SCT__tp_func_my_event\\n .pushsection .static_call_sites, \\"a\\"\\n .long 1b - .\\n .long __SCK__tp_func_my_event - .\\n .popsection");';
    const orig = `extern void __SCT__tp_func_my_event(void);\nint target(int x) { ${call} return exported_fn(x); }`;
    const out = await diffOutput(orig, orig.replace('exported_fn(x)', 'exported_fn(x + 3)'));
    const moduleSymbols = await linkedKernel({
      file: `struct static_call_key { long f; } __SCK__tp_func_my_event; void __SCT__tp_func_my_event(void) {}\n${orig}`,
    });
    const vmlinux = await linkedKernel({ core: 'int hidden_global;' });
    const p = prepareObject(
      out,
      {
        exports: EXPORTS,
        vmlinux: { objname: 'vmlinux', symbols: vmlinux },
        module: { objname: 'mymod', symbols: moduleSymbols },
      },
      { object: 'drivers/mymod.o', anchorPrefix: '__a_', entrySizes: new Map([['.static_call_sites', 8]]) },
    );
    expect(p.problems).toEqual([]);
    expect(p.warnings.join('\n')).toMatch(
      /dropped a \.static_call_sites site keyed by __SCK__tp_func_my_event of module mymod: the patched code calls through its trampoline/,
    );
    const sites = p.elf.findSection('.static_call_sites');
    expect(
      sites === undefined ||
        p.elf.sections[sites]!.body.kind !== 'bytes' ||
        (p.elf.sections[sites]!.body as { data: Buffer }).data.length === 0,
    ).toBe(true);
    expect(p.elf.symbols.map((s) => s.name)).toContain('.klp.sym.mymod.__SCT__tp_func_my_event,0');
  });

  test('post-link: relocations against .klp.sym symbols move to .klp.rela.OBJ.SECTION, the symbols become SHN_LIVEPATCH', async () => {
    const src = `
extern int old_value asm("\\".klp.sym.vmlinux.old_value,2\\"");
extern int mod_value asm("\\".klp.sym.mymod.mod_value,0\\"");
extern int printk(const char *fmt, ...);
int f(void) { return printk("%d", old_value + mod_value); }`;
    const o = await compileC(tmp.path, 'linked', src, KERNEL_FLAGS);
    const ko = path.join(tmp.path, 'linked.ko');
    await run('ld', ['-r', '-o', ko, o]);
    const r = finalizeModule(await readElfFile(ko), EXPORTS, 'livepatch-x');
    expect(r.problems).toEqual([]);
    expect(r.klpSections.map((s) => s.name).sort()).toEqual(['.klp.rela.mymod..text.f', '.klp.rela.vmlinux..text.f']);
    for (const name of ['.klp.rela.mymod..text.f', '.klp.rela.vmlinux..text.f']) {
      const sec = r.ko.sections[r.ko.findSection(name)!]!;
      expect(sec.type).toBe(SHT.RELA);
      expect(sec.flags & (SHF.RELA_LIVEPATCH | SHF.ALLOC)).toBe(SHF.RELA_LIVEPATCH | SHF.ALLOC);
      expect(r.ko.sections[sec.info]!.name).toBe('.text.f');
    }
    const klp = r.ko.symbols.filter((s) => s.name.startsWith('.klp.sym.'));
    expect(klp.map((s) => s.reserved)).toEqual([SHN.LIVEPATCH, SHN.LIVEPATCH]);
    // The ordinary relocation section keeps only what the module loader applies (printk, __fentry__).
    const rela = r.ko.sections[r.ko.findSection('.rela.text.f')!]!;
    expect(
      rela.body.kind === 'relocations' && [...rela.body.table].every((x) => !r.ko.symbols[x.symbol]!.name.startsWith('.klp.sym.')),
    ).toBe(true);
  });

  test('post-link: an undefined symbol that is neither klp nor exported is reported before anyone tries to load it', async () => {
    const o = await compileC(tmp.path, 'unexported', 'extern int secret; int g(void) { return secret; }', KERNEL_FLAGS);
    const ko = path.join(tmp.path, 'unexported.ko');
    await run('ld', ['-r', '-o', ko, o]);
    const r = finalizeModule(await readElfFile(ko), EXPORTS, 'livepatch-y');
    expect(r.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/secret is still undefined after linking and the kernel does not export it/),
    ]);
  });
});

describe('the klp_patch source', () => {
  const obj = (objname: string, fns: string[], cbs: PreparedObject['callbacks'] = []): PreparedObject => ({
    elf: undefined as unknown as ElfObject,
    object: `${objname}.o`,
    objname,
    problems: [],
    warnings: [],
    namespaces: [],
    functions: fns.map((f, i) => ({ oldName: f, sympos: i, anchor: `__a_${objname}_${i}` })),
    callbacks: cbs,
  });

  test('one klp_object per patched object, vmlinux first, atomic replace unless asked otherwise', () => {
    const { source, problems } = hookSource([obj('zmod', ['z']), obj('vmlinux', ['a', 'b'], [{ kind: 'post_patch', anchor: '__cb' }])], {
      replace: true,
    });
    expect(problems).toEqual([]);
    expect(source).toContain('{ .old_name = "b", .new_func = __a_vmlinux_1, .old_sympos = 1 },');
    expect(source.indexOf('.name = NULL')).toBeLessThan(source.indexOf('.name = "zmod"'));
    expect(source).toContain('.callbacks = { .post_patch = __cb }');
    expect(source).toContain('.replace = true,');
    expect(source).toContain('MODULE_INFO(livepatch, "Y");');
    expect(hookSource([obj('vmlinux', ['a'])], { replace: false }).source).toContain('.replace = false,');
  });

  test('two callbacks of one kind for one object are refused', () => {
    const { problems } = hookSource(
      [obj('vmlinux', ['a'], [{ kind: 'pre_patch', anchor: 'x' }]), obj('vmlinux', ['b'], [{ kind: 'pre_patch', anchor: 'y' }])],
      { replace: true },
    );
    expect(problems.map((p) => p.message)).toEqual([expect.stringMatching(/a second pre_patch callback for vmlinux/)]);
  });
});
