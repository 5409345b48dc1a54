import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { parseElf, serializeElf, readElfFile, writeElfFile, SHT, STB, STT, EM, ET } from '../../src/elf/index.js';
import { modelDifference } from '../helpers/model.js';
import { firstDifference, readelfNormalized } from '../helpers/readelf.js';
import { assemble, compileC, linkRelocatable } from '../helpers/toolchain.js';

const KERNEL_LIKE_C = `
#include <stddef.h>
struct ops { int (*fn)(int); const char *name; };
static int counter;
int exported_value = 42;
static const int table[4] = { 1, 2, 3, 5 };
extern int external_fn(int);
__attribute__((noinline)) static int helper(int x) { static int calls; calls++; return x * table[x & 3] + calls; }
int uses_static_local(int x) { static int seen; seen += x; return helper(seen) + counter++; }
int calls_external(int x) { return external_fn(x) + exported_value; }
const char *message(int x) { return x ? "changed message" : "other message"; }
static int op_impl(int x) { return x + 1; }
const struct ops my_ops = { op_impl, "my_ops" };
__attribute__((section(".data.once"))) static int once_flag;
int set_once(void) { int old = once_flag; once_flag = 1; return old; }
__attribute__((cold, noinline)) void cold_path(const char *s) { __builtin_puts(s); }
int maybe_cold(int x) { if (__builtin_expect(x == 7, 0)) cold_path("seven"); return x; }
`;

/** A COMDAT group, a .bss-only symbol, an absolute symbol and a weak one: what gas emits for kernel objects. */
const GROUPS_ASM = `
  .section .text.inline_fn,"axG",@progbits,inline_fn,comdat
  .globl inline_fn
  .type inline_fn,@function
inline_fn:
2:
  call other_fn
  ret
  .size inline_fn,.-inline_fn
  .section .bss.zeroed,"aw",@nobits
  .p2align 6
zeroed: .zero 128
  .set abs_sym, 0x1234
  .globl abs_sym
  .weak weak_fn
  .text
weak_fn: ret
  .section __ex_table,"a"
  .balign 4
  .long 2b - .
  .long weak_fn - .
`;

describe('ELF read → write round trip on objects gcc and gas produce here', () => {
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  async function roundTrip(obj: string): Promise<string> {
    const model = await readElfFile(obj);
    const out = `${obj}.rewritten.o`;
    await writeElfFile(out, model);
    return out;
  }

  it.each([
    ['function sections', ['-ffunction-sections', '-fdata-sections']],
    ['plain sections', []],
    ['-O0 with frame pointers', ['-O0', '-fno-omit-frame-pointer', '-ffunction-sections']],
  ])('a kernel-like C object (%s) rewrites to an object readelf shows identically', async (_label, flags) => {
    const obj = await compileC(tmp.path, `c${flags.length}`, KERNEL_LIKE_C, flags);
    const out = await roundTrip(obj);
    const [a, b] = await Promise.all([readelfNormalized(obj), readelfNormalized(out)]);
    expect(firstDifference(a, b)).toBeUndefined();
    await linkRelocatable(tmp.path, out);
  });

  it('COMDAT groups, NOBITS, absolute and weak symbols survive unchanged', async () => {
    const obj = await assemble(tmp.path, 'groups', GROUPS_ASM);
    const model = await readElfFile(obj);
    const group = model.sections.find((s) => s.type === SHT.GROUP)!;
    expect(group.body.kind).toBe('group');
    expect(group.body.kind === 'group' && group.body.members.map((m) => model.sections[m]!.name)).toEqual(
      expect.arrayContaining(['.text.inline_fn', '.rela.text.inline_fn']),
    );
    const abs = model.symbol(model.symbolsNamed('abs_sym')[0]!);
    expect(abs.reserved).toBe(0xfff1);
    expect(abs.value).toBe(0x1234n);
    expect(model.symbol(model.symbolsNamed('weak_fn')[0]!).bind).toBe(STB.WEAK);
    const bss = model.section(model.findSection('.bss.zeroed')!);
    expect(bss.body).toEqual({ kind: 'nobits', size: 128n });

    const out = await roundTrip(obj);
    expect(firstDifference(await readelfNormalized(obj), await readelfNormalized(out))).toBeUndefined();
    await linkRelocatable(tmp.path, out);
  });

  it('read → write → read gives an equal model, and writing that again gives the same bytes', async () => {
    const obj = await compileC(tmp.path, 'model', KERNEL_LIKE_C, ['-ffunction-sections', '-fdata-sections']);
    const first = parseElf(await readFile(obj), obj);
    const bytes = serializeElf(first);
    const second = parseElf(bytes, 'rewritten');
    expect(modelDifference(first, second)).toBeUndefined();
    expect(serializeElf(second).equals(bytes)).toBe(true);
  });

  it('finds sections, their relocations and symbols by name through maps', async () => {
    const obj = await compileC(tmp.path, 'lookup', KERNEL_LIKE_C, ['-ffunction-sections', '-fdata-sections']);
    const model = await readElfFile(obj);
    expect(model.ident.machine).toBe(EM.X86_64);
    expect(model.ident.type).toBe(ET.REL);
    const text = model.findSection('.text.calls_external')!;
    expect(text).toBeDefined();
    const [rela] = model.relocationsFor(text);
    expect(model.section(rela!).name).toBe('.rela.text.calls_external');
    const body = model.section(rela!).body;
    if (body.kind !== 'relocations') throw new Error('expected relocations');
    const targets = [...body.table].map((r) => model.symbol(r.symbol).name);
    expect(targets).toEqual(expect.arrayContaining(['external_fn', 'exported_value']));
    const fn = model.symbol(model.symbolsNamed('uses_static_local')[0]!);
    expect(fn.type).toBe(STT.FUNC);
    expect(model.symbolSection(fn)?.name).toBe('.text.uses_static_local');
    // gcc names static locals name.N: both live in the table, found by their own names.
    expect(model.symbols.some((s) => /^seen\.\d+$/.test(s.name))).toBe(true);
  });

  it('new names added to a model are appended to the string tables and read back', async () => {
    const obj = await compileC(tmp.path, 'rename', KERNEL_LIKE_C, ['-ffunction-sections']);
    const model = await readElfFile(obj);
    const idx = model.symbolsNamed('message')[0]!;
    model.symbol(idx).name = 'message_v2';
    model.section(model.findSection('.text.message')!).name = '.text.message_v2';
    model.reindex();
    const out = path.join(tmp.path, 'renamed.o');
    await writeElfFile(out, model);
    const back = await readElfFile(out);
    expect(back.findSection('.text.message_v2')).toBeDefined();
    expect(back.symbolsNamed('message_v2')).toHaveLength(1);
    expect(back.symbolsNamed('message')).toHaveLength(0);
    await readelfNormalized(out);
    await linkRelocatable(tmp.path, out);
  });
});
