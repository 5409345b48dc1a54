import { EM, STT } from '../../src/elf/index.js';
import { archRules } from '../../src/diff/arch.js';
import { changedAndNew as names, refusalCodes as codes } from '../helpers/kernel-like-diff.js';
import { S390X_KERNEL_FLAGS, s390xKernelLikeDiffer } from '../helpers/toolchain-s390x.js';
import { relocations, sectionSizes } from '../helpers/output-sections.js';

// R_390_PC32 = 5, R_390_PLT32DBL = 20, R_390_GOTENT = 26, R_390_64 = 22 (elf.h).
const R_390_PC32 = 5;
const R_390_GOTENT = 26;
const R_390_64 = 22;

/**
 * Kernel-like C for s390x: the kernel's own asm layouts for the exception and
 * bug tables (arch/s390/include/asm/asm-extable.h, bug.h with
 * CONFIG_DEBUG_BUGVERBOSE: struct bug_entry with relative pointers, 12 bytes).
 */
const PRELUDE = `
#define noinline __attribute__((noinline))
#define notrace __attribute__((no_instrument_function))
extern void __might_sleep(const char *file, int line);
extern int _printk(const char *fmt, ...);
extern int consume(long x);
#define WARN_ON(x) ({ int __w = !!(x); if (__builtin_expect(__w, 0)) asm volatile( \\
  "0: mc 0,0\\n" \\
  ".section .rodata.str,\\"aMS\\",@progbits,1\\n" "1: .asciz \\"f.c\\"\\n" ".previous\\n" \\
  ".section __bug_table,\\"awM\\",@progbits,%2\\n" "2: .long 0b-.\\n" " .long 1b-.\\n" " .short %0,%1\\n" " .org 2b+%2\\n" ".previous\\n" \\
  : : "i" (__LINE__), "i" (1 << 0), "i" (12)); __w; })
static inline __attribute__((always_inline)) long load_user(const long *p) {
  long v = -14;
  asm volatile("0: lg %0,0(%1)\\n1:\\n"
    ".section __ex_table,\\"a\\"\\n.align 4\\n.long 0b-.\\n.long 1b-.\\n.short 1\\n.short 0\\n.previous\\n"
    : "+d" (v) : "a" (p));
  return v;
}
`;

const BASE = `
int show(long x) { _printk("value %ld\\n", x); return consume(x); }
int other(long x) { _printk("other %ld\\n", x); return consume(x + 1); }
`;

describe('the differ on s390x objects compiled here like Linux 6.1 objects', () => {
  const { diff, objects } = s390xKernelLikeDiffer(PRELUDE);

  it('has rules for s390x: nothing refused as an unsupported architecture, the objects big-endian', async () => {
    const [o, p] = await objects(BASE, BASE);
    expect(o.ident.machine).toBe(EM.S390);
    expect(p.littleEndian).toBe(false);
    expect(archRules(EM.S390)?.name).toBe('s390x');
  });

  it('reports nothing for an identical rebuild', async () => {
    const r = await diff(BASE, BASE);
    expect(r.outcome).toBe('no-change');
    expect(names(r)).toEqual({ changed: [], new: [] });
    expect(r.refusals).toEqual([]);
  });

  it('finds a changed string literal reached through the GOT, only in the function that prints it, and keeps a label for the GOT slot', async () => {
    // "value %ld" is the first string of the merged section: lengthening it moves "other %ld" for other(),
    // which must still read as unchanged (the GOTENT addend counts from the instruction, 2 bytes before the field).
    const r = await diff(BASE, BASE.replace('value %ld', 'value is %ld'));
    expect(names(r)).toEqual({ changed: ['show'], new: [] });
    expect(r.changed[0]!.firstDifference!.what).toMatch(/string literal changed \("value %ld\\n" → "value is %ld\\n"\)/);
    expect(r.outcome).toBe('changed');
    expect(r.refusals).toEqual([]);
    // The module loader fills a GOT slot with its symbol's address: the string needs a symbol of its own.
    const got = relocations(r.output!, '.text.show').filter((x) => x.split(' ')[1] === String(R_390_GOTENT));
    expect(got).toHaveLength(1);
    const label = r.output!.symbols.find((s) => s.name === got[0]!.split(' ')[2]!.replace(/\+2$/, ''))!;
    expect(label.type).toBe(STT.NOTYPE);
    const strings = r.output!.sections[label.shndx]!.body;
    expect(strings.kind === 'bytes' && strings.data.toString('latin1', Number(label.value)).startsWith('value is %ld\n')).toBe(true);
    expect(got[0]).toMatch(/\+2$/);
  });

  it('recognises the ftrace nop (brcl 0,0) of a changed function and carries its __mcount_loc entry', async () => {
    const r = await diff(BASE, BASE.replace('consume(x + 1)', 'consume(x + 2)'));
    expect(names(r)).toEqual({ changed: ['other'], new: [] });
    expect(r.refusals).toEqual([]);
    const text = r.output!.sections[r.output!.findSection('.text.other')!]!.body;
    expect(text.kind === 'bytes' && [...text.data.subarray(0, 6)]).toEqual([0xc0, 0x04, 0, 0, 0, 0]);
    expect(sectionSizes(r.output!)['__mcount_loc']).toBe(8);
    expect(relocations(r.output!, '__mcount_loc')).toEqual([`0 ${R_390_64} other+0`]);
  });

  // Each with the kernel's notrace of its time: hotpatch(0,0) where the hotpatch nop is ftrace's
  // (include/linux/compiler_types.h, CC_USING_HOTPATCH), no_instrument_function otherwise.
  const NO_INSTRUMENT = '__attribute__((no_instrument_function))';
  it.each([
    ['-mhotpatch=0,3 (the hotpatch nop, kernels before gcc had -mnop-mcount)', ['-mhotpatch=0,3'], [], '__attribute__((hotpatch(0, 0)))'],
    ['-mfentry without -mnop-mcount (brasl %r0,__fentry__)', ['-pg', '-mfentry'], ['__fentry__'], NO_INSTRUMENT],
    // gcc's plain -pg prologue on s390x needs CFI (asynchronous unwind tables), as older kernels had.
    ['plain -pg (older kernels: brasl %r14,_mcount after saving r14)', ['-pg', '-fasynchronous-unwind-tables'], ['_mcount'], NO_INSTRUMENT],
  ])('recognises the ftrace entry of older s390x kernels: %s', async (_what, ftrace, callees, notrace) => {
    const dropped = ['-pg', '-mrecord-mcount', '-mnop-mcount', '-mfentry', '-fno-asynchronous-unwind-tables'];
    const flags = [...S390X_KERNEL_FLAGS.filter((f) => !dropped.includes(f)), ...ftrace];
    const r = await diff(BASE, BASE.replace('consume(x + 1)', 'consume(x + 2)'), flags);
    expect(names(r)).toEqual({ changed: ['other'], new: [] });
    expect(r.refusals).toEqual([]);
    for (const c of callees) expect(r.output!.symbols.some((s) => s.name === c)).toBe(true);
    const off = BASE.replace('int other', `${notrace} int other`);
    const refused = await diff(off, off.replace('consume(x + 1)', 'consume(x + 2)'), flags);
    expect(codes(refused)).toEqual(['NO_FENTRY']);
  });

  it('refuses a changed notrace function, naming the missing ftrace nop', async () => {
    const src = `notrace int quiet(long x) { return consume(x); }\n`;
    const r = await diff(src, src.replace('consume(x)', 'consume(x - 1)'));
    expect(codes(r)).toEqual(['NO_FENTRY']);
    expect(r.refusals[0]!.message).toMatch(/quiet .*no ftrace nop \(brcl 0,0\)/);
  });

  it('includes a new static function a changed one calls, and refers to an unchanged static callee in the running kernel', async () => {
    const src = `
static noinline long scale(long x) { return consume(x * 5); }
int caller(long x) { return scale(x) + 1; }
int keeper(long x) { return scale(x + 1); }`;
    const patched = src.replace(
      'int caller(long x) { return scale(x) + 1; }',
      'static noinline long fresh(long x) { return consume(x * 3); }\nint caller(long x) { return scale(x) + fresh(x); }',
    );
    const r = await diff(src, patched);
    expect(names(r).changed).toEqual(['caller']);
    expect(names(r).new).toEqual([expect.stringMatching(/^fresh(\.isra\.\d+|\.constprop\.\d+)?$/)]);
    expect(r.included.functions).toEqual(['caller', r.new[0]!.name]);
    const scale = r.externals.find((e) => e.name.startsWith('scale'));
    expect(scale).toMatchObject({ local: true, kind: 'function' });
    expect(r.changed[0]!.optimizations).toContain(`calls ${r.new[0]!.name}, which is new`);
  });

  it('treats __LINE__ renumbered in lghi, llill and lgfi immediates before __might_sleep as no change', async () => {
    const src = `
int sleepy(long x) { __might_sleep("f.c", __LINE__); return consume(x); }
#line 40000
int high(long x) { __might_sleep("f.c", __LINE__); return consume(x + 2); }
#line 100000
int higher(long x) { __might_sleep("f.c", __LINE__); return consume(x + 3); }
`;
    const shifted = `\n\n\n${src.replace('#line 40000', '#line 40003').replace('#line 100000', '#line 100003')}`;
    const r = await diff(src, shifted);
    expect(r.outcome).toBe('no-change');
    expect(r.lineOnly.sort()).toEqual(['high', 'higher', 'sleepy']);
  });

  it('treats a WARN_ON moved down as no change (the __bug_table line field is ignored), and still sees a real change beside it', async () => {
    const src = `int checked(long x) { WARN_ON(x > 3); return consume(x); }\n`;
    const moved = await diff(src, `\n\n${src}`);
    expect(moved.outcome).toBe('no-change');
    const real = await diff(src, `\n${src.replace('consume(x)', 'consume(x + 7)')}`);
    expect(names(real).changed).toEqual(['checked']);
  });

  it('sees a changed constant passed to another call before a __might_sleep', async () => {
    const src = `extern int consume2(long x, int n);\nint caller(long x) { int r = consume2(x, 17); __might_sleep("f.c", 40); return r + consume(x); }\n`;
    const r = await diff(src, src.replace('consume2(x, 17)', 'consume2(x, 18)'));
    expect(names(r).changed).toEqual(['caller']);
    expect(r.lineOnly).toEqual([]);
  });

  it("carries a changed function's __ex_table and __bug_table entries, and no other function's", async () => {
    const src = `
int reader(const long *p) { WARN_ON(p == 0); return consume(load_user(p)); }
int bystander(const long *p) { WARN_ON(p == (void *)8); return consume(load_user(p) + 1); }`;
    const r = await diff(src, src.replace('consume(load_user(p))', 'consume(load_user(p) * 2)'));
    expect(names(r)).toEqual({ changed: ['reader'], new: [] });
    expect(r.refusals).toEqual([]);
    const sizes = sectionSizes(r.output!);
    expect(sizes['__ex_table']).toBe(12);
    expect(sizes['__bug_table']).toBe(12);
    // Each entry's key points into reader's code; the bug entry's file name string comes along.
    const ex = relocations(r.output!, '__ex_table');
    expect(ex.map((x) => x.split(' ').slice(0, 2).join(' '))).toEqual([`0 ${R_390_PC32}`, `4 ${R_390_PC32}`]);
    expect(ex.every((x) => x.includes(' reader+'))).toBe(true);
    const bug = relocations(r.output!, '__bug_table');
    expect(bug[0]).toMatch(new RegExp(`^0 ${R_390_PC32} reader\\+`));
    expect(bug[1]).toMatch(new RegExp(`^4 ${R_390_PC32} \\.rodata\\.str\\+`));
  });

  it("carries a changed function's __stack_protector_loc entries (newer kernels' guard-load records), 8-byte addresses", async () => {
    // What gcc -mstack-protector-guard-record writes (gcc 12 has no s390x support for it yet): `.quad` of each guard load.
    const guard = `asm volatile("0: nopr %r7\\n.pushsection __stack_protector_loc,\\"a\\",@progbits\\n.quad 0b\\n.popsection");`;
    const src = `int a(long x) { ${guard} return consume(x); }\nint b(long x) { ${guard} return consume(x + 1); }\n`;
    const r = await diff(src, src.replace('consume(x + 1)', 'consume(x + 2)'));
    expect(names(r)).toEqual({ changed: ['b'], new: [] });
    expect(sectionSizes(r.output!)['__stack_protector_loc']).toBe(8);
    expect(relocations(r.output!, '__stack_protector_loc').map((x) => x.split(' ')[1])).toEqual([String(R_390_64)]);
  });

  it('sees a change in a special-section entry alone (the exception fixup type)', async () => {
    const src = (type: number) => `
int reader(const long *p) {
  long v = -14;
  asm volatile("0: lg %0,0(%1)\\n1:\\n"
    ".section __ex_table,\\"a\\"\\n.align 4\\n.long 0b-.\\n.long 1b-.\\n.short ${type}\\n.short 0\\n.previous\\n"
    : "+d" (v) : "a" (p));
  return consume(v);
}`;
    const [o, p] = await objects(src(1), src(3));
    expect(o.sections.some((s) => s.name === '__ex_table')).toBe(true);
    const r = await diff(src(1), src(3));
    expect(names(r).changed).toEqual(['reader']);
    expect(r.changed[0]!.firstDifference!.what).toBe('its __ex_table entries changed');
    expect(p.littleEndian).toBe(false);
  });

  it('lists the callers IPA-RA exposes: a return through the r14 expoline is no call out of the object', async () => {
    const src = `
static noinline long inner(long x) { return x * 7 + 1; }
int outer1(long x) { return consume(inner(x) * 2); }
int outer2(long x) { return consume(inner(x + 5) * 3); }`;
    const r = await diff(src, src.replace('x * 7 + 1', 'x * 7 + 2'));
    const inner = r.changed.find((f) => f.name.startsWith('inner'))!;
    expect(inner.exposedCallers).toEqual(['outer1', 'outer2']);
  });

  it('takes const tables of addresses, which -fPIE puts in writable .data.rel.ro sections, as constants', async () => {
    const table = `static const char *const names[] = { "zero", "one" };\nint pick(long x) { return consume((long)names[x & 1]); }\n`;
    const [o] = await objects(table, table);
    expect(o.sections.some((s) => s.name.startsWith('.data.rel.ro'))).toBe(true);
    const r = await diff(table, table.replace('"one"', '"uno"'));
    expect(codes(r)).toEqual(['RODATA_CHANGED']);
    // Trace events' __print_symbolic tables: one static `symbols` per use, several in one function.
    const src = `
#define SHOW(x) ({ static const struct { long v; const char *n; } symbols[] = { { 1, "a" }, { 2, "b" } }; (long)symbols[(x) & 1].n; })
int show2(long x) { return consume(SHOW(x) + SHOW(x + 1)); }`;
    const shown = await diff(src, src.replace('consume(SHOW', 'consume(1 + SHOW'));
    expect(shown.refusals).toEqual([]);
    expect(names(shown).changed).toEqual(['show2']);
  });

  it('refuses a change to initialised data with the way out named', async () => {
    const src = `int limit = 10;\nint check(long x) { return consume(x > limit); }\n`;
    const r = await diff(src, src.replace('limit = 10', 'limit = 11'));
    expect(codes(r)).toEqual(['DATA_CHANGED']);
    expect(r.refusals[0]!.message).toMatch(/limit.*\.data\.limit.*shadow variable/);
    expect(r.outcome).toBe('unsupported');
  });
});
