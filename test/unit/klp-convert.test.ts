import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { readElfFile, SHF, SHN } from '../../src/elf/index.js';
import { convertModule, type ConvertContext } from '../../src/klp/convert/convert.js';
import { KernelTarget } from '../../src/klp/convert/kernel-target.js';
import type { Exports } from '../../src/klp/symvers.js';
import { compileC } from '../helpers/toolchain.js';

/**
 * klp-convert on objects gcc compiles here: a "kernel" linked from two files
 * that both have a `static int helper` (so the name is ambiguous), and a
 * livepatch module whose klp_func/klp_object arrays have the kernel's first
 * fields (old_name, new_func, old_sympos; name, funcs) and whose replacement
 * calls the static helper. The integration suite does the same on the
 * fixture kernel and boots the result (test/integration/convert.test.ts).
 */
let tmp: DirectoryResult;
let kernel: KernelTarget;
beforeAll(async () => {
  tmp = await tmpDir({ unsafeCleanup: true });
  const a = await compileC(
    tmp.path,
    'a',
    `static int __attribute__((noinline)) helper(int x) { return x + 1; }
     int visible_a(int x) { return helper(x) * 2; }
     int only_clone_impl(int x) __asm__("only_clone.isra.0");
     int only_clone_impl(int x) { return x - 1; }
     static int counter_a;
     int bump_a(void) { return ++counter_a; }`,
  );
  const b = await compileC(
    tmp.path,
    'b',
    `static int __attribute__((noinline)) helper(int x) { return x + 2; }
     int visible_b(int x) { return helper(x) * 3; }`,
  );
  await execa('ld', ['-r', '-o', path.join(tmp.path, 'kernel.o'), a, b]);
  kernel = new KernelTarget('vmlinux', await readElfFile(path.join(tmp.path, 'kernel.o')), 'vmlinux');
}, 60_000);
afterAll(async () => {
  await tmp.cleanup();
});

const PRELUDE = `
struct klp_func { const char *old_name; void *new_func; unsigned long old_sympos; long internal[10]; };
struct klp_object { const char *name; struct klp_func *funcs; long internal[12]; };
#define SYMPOS(sym, obj, pos) static const char __sympos_##sym[] __attribute__((used, aligned(1), section(".klpforge.sympos"))) = #sym ":" #obj ":" #pos
`;

async function livepatch(name: string, body: string, replaces: string, sympos = 0) {
  const obj = await compileC(
    tmp.path,
    name,
    `${PRELUDE}
     ${body}
     static struct klp_func funcs[] = { { .old_name = "${replaces}", .new_func = new_fn, .old_sympos = ${sympos} }, { } };
     struct klp_object objs[] = { { .name = 0, .funcs = funcs }, { } };`,
    ['-ffunction-sections', '-fno-PIE'],
  );
  return readElfFile(obj);
}

const context = (exports: Exports = new Map()): ConvertContext => ({
  exports,
  target: (objname) => Promise.resolve(objname === 'vmlinux' ? kernel : undefined),
  modulesDefining: () => Promise.resolve([]),
});

describe('klpforge convert on objects compiled here', () => {
  test('a static function the kernel has twice becomes a klp relocation at the position the annotation names', async () => {
    const ko = await livepatch(
      'lp-annotated',
      'extern int helper(int); SYMPOS(helper, vmlinux, 2); int new_fn(int x) { return helper(x); }',
      'visible_a',
    );
    const r = await convertModule(ko, 'lp_annotated', context());
    expect(r.problems).toEqual([]);
    expect(r.replaced).toEqual([{ objname: 'vmlinux', name: 'visible_a', sympos: 0 }]);
    expect(r.converted).toEqual([{ name: 'helper', objname: 'vmlinux', sympos: 2, relocations: 1 }]);
    const sym = r.ko.symbols.find((s) => s.name === '.klp.sym.vmlinux.helper,2');
    expect(sym?.reserved).toBe(SHN.LIVEPATCH);
    const rela = r.ko.sections.find((s) => s.name === '.klp.rela.vmlinux..text.new_fn');
    expect(rela && (rela.flags & SHF.RELA_LIVEPATCH) !== 0n).toBe(true);
    // The annotations are kept for the record but not loaded.
    expect(r.ko.sections.find((s) => s.name === '.klpforge.sympos')!.flags & SHF.ALLOC).toBe(0n);
  });

  test('without the annotation, the ambiguous name is refused with every candidate and its position', async () => {
    const ko = await livepatch('lp-plain', 'extern int helper(int); int new_fn(int x) { return helper(x); }', 'visible_a');
    const r = await convertModule(ko, 'lp_plain', context());
    expect(r.problems.map((p) => p.code)).toEqual(['CONVERT_AMBIGUOUS']);
    expect(r.problems[0]!.message).toMatch(
      /vmlinux has 2 symbols named helper \(a\.c at 0x[0-9a-f]+ \(sympos 1\); b\.c at 0x[0-9a-f]+ \(sympos 2\)\)/,
    );
    expect(r.problems[0]!.message).toMatch(/KLPFORGE_SYMPOS\(helper, vmlinux, POS\)/);
  });

  test('a unique static variable and an exported function: one klp relocation, one normal link', async () => {
    const ko = await livepatch(
      'lp-var',
      'extern int counter_a; extern int printk(const char *, ...); int new_fn(int x) { printk("%d", counter_a); return x; }',
      'visible_a',
    );
    const r = await convertModule(ko, 'lp_var', context(new Map([['printk', { owner: 'vmlinux', kind: 'EXPORT_SYMBOL', namespace: '' }]])));
    expect(r.problems).toEqual([]);
    expect(r.converted.map((c) => `${c.objname}.${c.name},${c.sympos}`)).toEqual(['vmlinux.counter_a,0']);
    expect(r.linked).toEqual(['printk']);
  });

  test('a replaced function the kernel only has as a gcc clone is refused, naming the clone', async () => {
    const ko = await livepatch('lp-clone', 'int new_fn(int x) { return x; }', 'only_clone');
    const r = await convertModule(ko, 'lp_clone', context());
    expect(r.problems.map((p) => p.code)).toEqual(['CONVERT_CLONE_ONLY']);
    expect(r.problems[0]!.message).toMatch(/only gcc's clone\(s\) only_clone\.isra\.0/);
  });

  test('a replaced function the kernel lacks, a symbol that exists nowhere, and an old_sympos past the end are refused', async () => {
    const missing = await convertModule(
      await livepatch('lp-inlined', 'int new_fn(int x) { return x; }', 'never_out_of_line'),
      'lp',
      context(),
    );
    expect(missing.problems.map((p) => p.code)).toEqual(['CONVERT_INLINED']);
    const nowhere = await convertModule(
      await livepatch(
        'lp-nowhere',
        'extern int klpforge_no_such_symbol(int); int new_fn(int x) { return klpforge_no_such_symbol(x); }',
        'visible_a',
      ),
      'lp',
      context(),
    );
    expect(nowhere.problems.map((p) => p.code)).toEqual(['CONVERT_UNRESOLVED']);
    expect(nowhere.problems[0]!.message).toMatch(/klpforge_no_such_symbol is used but exists nowhere/);
    const past = await convertModule(await livepatch('lp-past', 'int new_fn(int x) { return x; }', 'helper', 3), 'lp', context());
    expect(past.problems.map((p) => p.code)).toEqual(['CONVERT_SYMPOS']);
  });

  test('callers of the replaced function in its own file are named (IPA-RA) when the kernel is linked', async () => {
    // A linked "vmlinux": calls are bytes there, not relocations.
    const linked = path.join(tmp.path, 'kernel.elf');
    await execa('ld', ['-e', 'visible_a', '-o', linked, path.join(tmp.path, 'a.o'), path.join(tmp.path, 'b.o')]);
    const k = new KernelTarget('vmlinux', await readElfFile(linked), 'vmlinux');
    const helper = k.occurrences('helper');
    expect(helper).toHaveLength(2);
    expect(k.sameFileCallers(helper[0]!)).toEqual(['visible_a']);
    expect(k.sameFileCallers(helper[1]!)).toEqual(['visible_b']);
  });
});
