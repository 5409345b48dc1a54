import { EM, type ElfObject, STT } from '../../src/elf/index.js';
import { archRules } from '../../src/diff/arch.js';
import { changedAndNew as names, refusalCodes as codes } from '../helpers/kernel-like-diff.js';
import { AARCH64_KERNEL_FLAGS, aarch64KernelLikeDiffer } from '../helpers/toolchain-aarch64.js';
import { relocations, sectionSizes } from '../helpers/output-sections.js';

// elf.h: R_AARCH64_ABS64 = 257, PREL32 = 261, ADR_PREL_PG_HI21 = 275, ADD_ABS_LO12_NC = 277, CALL26 = 283.
const R_AARCH64_ABS64 = 257;
const R_AARCH64_PREL32 = 261;
const R_AARCH64_ADR_PREL_PG_HI21 = 275;
const R_AARCH64_ADD_ABS_LO12_NC = 277;

/** d503201f (nop) as it sits in a little-endian object. */
const NOP = [0x1f, 0x20, 0x03, 0xd5];

/**
 * Kernel-like C for arm64: the kernel's own asm layouts (Linux 6.1,
 * arch/arm64/include/asm): the exception table (asm-extable.h: int insn,
 * fixup; short type, data), the bug table (asm-bug.h with
 * CONFIG_DEBUG_BUGVERBOSE: relative pointers, 12 bytes, then `brk #0x800`),
 * an alternative (alternative-macros.h: the replacement in `.subsection 1`
 * of the function's own section), and notrace as compiler_types.h spells it
 * when the compiler has -fpatchable-function-entry.
 */
const PRELUDE = `
#define noinline __attribute__((noinline))
#define notrace __attribute__((patchable_function_entry(0, 0)))
#define __stringify_1(x) #x
#define __stringify(x) __stringify_1(x)
extern void __might_sleep(const char *file, int line);
extern int _printk(const char *fmt, ...);
extern int consume(long x);
#define WARN_ON(x) ({ int __w = !!(x); if (__builtin_expect(__w, 0)) asm volatile( \\
  "14470: brk 0x800\\n" \\
  ".pushsection __bug_table,\\"aw\\"\\n.align 2\\n14471: .long 14470b - .\\n" \\
  ".pushsection .rodata.str,\\"aMS\\",@progbits,1\\n14472: .string \\"f.c\\"\\n.popsection\\n" \\
  ".long 14472b - .\\n.short " __stringify(__LINE__) "\\n.short 1 << 0\\n.popsection\\n"); __w; })
static inline __attribute__((always_inline)) long load_user(const long *p) {
  long v = -14;
  asm volatile("0: ldr %0, [%1]\\n1:\\n"
    ".pushsection __ex_table,\\"a\\"\\n.align 2\\n.long ((0b) - .)\\n.long ((1b) - .)\\n.short (3)\\n.short (0)\\n.popsection\\n"
    : "+r" (v) : "r" (p));
  return v;
}
#define ALT_BARRIER(repl) asm volatile("661: nop\\n662:\\n" \\
  ".pushsection .altinstructions,\\"a\\"\\n.word 661b - .\\n.word 663f - .\\n.hword 7\\n.byte 662b-661b\\n.byte 664f-663f\\n.popsection\\n" \\
  ".subsection 1\\n663: " repl "\\n664:\\n.previous\\n" ::: "memory")
/* ALTERNATIVE_CB: no replacement, alt_offset names a callback that patches the site at boot. */
#define ALT_CB(cb) asm volatile("661: nop\\n662:\\n" \\
  ".pushsection .altinstructions,\\"a\\"\\n.word 661b - .\\n.word " #cb " - .\\n.hword 1 << 15\\n.byte 662b-661b\\n.byte 0\\n.popsection\\n" ::: "memory")
`;

const BASE = `
int show(long x) { _printk("value %ld\\n", x); return consume(x); }
int other(long x) { _printk("other %ld\\n", x); return consume(x + 1); }
`;

/** The first bytes of an output function section. */
function codeOf(obj: ElfObject, section: string, n: number): number[] {
  const body = obj.sections[obj.findSection(section)!]!.body;
  return body.kind === 'bytes' ? [...body.data.subarray(0, n)] : [];
}

describe('the differ on arm64 objects compiled here like Linux 6.1 objects', () => {
  const { diff, objects } = aarch64KernelLikeDiffer(PRELUDE);

  it('has rules for arm64: nothing refused as an unsupported architecture, the objects little-endian', async () => {
    const [o, p] = await objects(BASE, BASE);
    expect(o.ident.machine).toBe(EM.AARCH64);
    expect(p.littleEndian).toBe(true);
    expect(archRules(EM.AARCH64)?.name).toBe('aarch64');
  });

  it('reports nothing for an identical rebuild, whose every section carries $x/$d mapping symbols', async () => {
    const [o] = await objects(BASE, BASE);
    const mapping = o.symbols.filter((s) => s.name === '$x' || s.name === '$d');
    expect(mapping.length).toBeGreaterThan(4);
    expect(mapping.every((s) => s.type === STT.NOTYPE)).toBe(true);
    const r = await diff(BASE, BASE);
    expect(r.outcome).toBe('no-change');
    expect(names(r)).toEqual({ changed: [], new: [] });
    expect(r.refusals).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  it('recognises the ftrace nops of a changed function and carries its __patchable_function_entries entry', async () => {
    const r = await diff(BASE, BASE.replace('consume(x + 1)', 'consume(x + 2)'));
    expect(names(r)).toEqual({ changed: ['other'], new: [] });
    expect(r.refusals).toEqual([]);
    expect(codeOf(r.output!, '.text.other', 8)).toEqual([...NOP, ...NOP]);
    expect(sectionSizes(r.output!)['__patchable_function_entries']).toBe(8);
    expect(relocations(r.output!, '__patchable_function_entries')).toEqual([`0 ${R_AARCH64_ABS64} other+0`]);
    // Mapping symbols are no functions or data of their own: none is reported, refused or carried as a symbol.
    expect(r.output!.symbols.some((s) => s.name === '$x' || s.name === '$d')).toBe(false);
  });

  it('refuses a changed notrace function, naming the missing ftrace nops', async () => {
    const src = `notrace int quiet(long x) { return consume(x); }\n`;
    const r = await diff(src, src.replace('consume(x)', 'consume(x - 1)'));
    expect(codes(r)).toEqual(['NO_FENTRY']);
    expect(r.refusals[0]!.message).toMatch(/quiet .*nop; nop/);
  });

  const NO_INSTRUMENT = '__attribute__((no_instrument_function))';
  it.each([
    ['BTI (bti c, then the nops)', ['-mbranch-protection=pac-ret+leaf+bti'], [], 'notrace'],
    ['plain -pg (kernels before 5.5: bl _mcount after the frame record)', ['-pg'], ['_mcount'], NO_INSTRUMENT],
  ])('recognises the ftrace entry of other arm64 kernels: %s', async (_what, extra, callees, notrace) => {
    const dropped = ['-fpatchable-function-entry=2', '-mbranch-protection=pac-ret+leaf'];
    const flags = [...AARCH64_KERNEL_FLAGS.filter((f) => !extra.includes('-pg') || !dropped.includes(f)), ...extra];
    const r = await diff(BASE, BASE.replace('consume(x + 1)', 'consume(x + 2)'), flags);
    expect(names(r)).toEqual({ changed: ['other'], new: [] });
    expect(r.refusals).toEqual([]);
    for (const c of callees) expect(r.output!.symbols.some((s) => s.name === c)).toBe(true);
    const off = BASE.replace('int other', `${notrace} int other`);
    const refused = await diff(off, off.replace('consume(x + 1)', 'consume(x + 2)'), flags);
    expect(codes(refused)).toEqual(['NO_FENTRY']);
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

  it('finds a changed string literal reached with adrp+add, only in the function that prints it', async () => {
    // Each function's strings sit in a section of their own; a longer one in a shared section would move the next.
    const shared = `static const char *pick(long x) { return x ? "value %ld\\n" : "other %ld\\n"; }
int show(long x) { _printk(pick(x), x); return consume(x); }
int other(long x) { _printk("other %ld\\n", x); return consume(x + 1); }`;
    const r = await diff(shared, shared.replace('value %ld', 'value is %ld'));
    expect(r.refusals).toEqual([]);
    expect(names(r).changed).toEqual(['show']);
    expect(r.changed[0]!.firstDifference!.what).toMatch(/string literal changed \("value %ld\\n" → "value is %ld\\n"\)/);
    const page = relocations(r.output!, '.text.show').filter((x) =>
      [R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADD_ABS_LO12_NC].map(String).includes(x.split(' ')[1]!),
    );
    expect(page.length).toBeGreaterThanOrEqual(2);
    const plain = await diff(BASE, BASE.replace('value %ld', 'value is %ld'));
    expect(names(plain)).toEqual({ changed: ['show'], new: [] });
  });

  it('treats __LINE__ renumbered in movz immediates before __might_sleep as no change', async () => {
    const src = `
int sleepy(long x) { __might_sleep("f.c", __LINE__); return consume(x); }
#line 40000
int high(long x) { __might_sleep("f.c", __LINE__); return consume(x + 2); }
`;
    const shifted = `\n\n\n${src.replace('#line 40000', '#line 40003')}`;
    const r = await diff(src, shifted);
    expect(r.outcome).toBe('no-change');
    expect(r.lineOnly.sort()).toEqual(['high', 'sleepy']);
  });

  it('sees a changed constant passed to another call before a __might_sleep', async () => {
    const src = `extern int consume2(long x, int n);\nint caller(long x) { int r = consume2(x, 17); __might_sleep("f.c", 40); return r + consume(x); }\n`;
    const r = await diff(src, src.replace('consume2(x, 17)', 'consume2(x, 18)'));
    expect(names(r).changed).toEqual(['caller']);
    expect(r.lineOnly).toEqual([]);
  });

  it('treats a WARN_ON moved down as no change (the __bug_table line field is ignored), and still sees a real change beside it', async () => {
    const src = `int checked(long x) { WARN_ON(x > 3); return consume(x); }\n`;
    const moved = await diff(src, `\n\n${src}`);
    expect(moved.outcome).toBe('no-change');
    const real = await diff(src, `\n${src.replace('consume(x)', 'consume(x + 7)')}`);
    expect(names(real).changed).toEqual(['checked']);
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
    const ex = relocations(r.output!, '__ex_table');
    expect(ex.map((x) => x.split(' ').slice(0, 2).join(' '))).toEqual([`0 ${R_AARCH64_PREL32}`, `4 ${R_AARCH64_PREL32}`]);
    expect(ex.every((x) => x.includes(' reader+'))).toBe(true);
    const bug = relocations(r.output!, '__bug_table');
    expect(bug[0]).toMatch(new RegExp(`^0 ${R_AARCH64_PREL32} reader\\+`));
    expect(bug[1]).toMatch(new RegExp(`^4 ${R_AARCH64_PREL32} \\.rodata\\.str\\+`));
  });

  it("carries a changed function's .altinstructions entry (12 bytes, not inferable beside a callback's) with its replacement, and sees a changed replacement", async () => {
    const src = `
int fenced(long x) { ALT_BARRIER("dmb ish"); return consume(x); }
int bystander(long x) { ALT_BARRIER("dmb ish"); return consume(x + 1); }
int patched_at_boot(long x) { ALT_CB(alt_cb_patch_nops); return consume(x + 2); }`;
    const r = await diff(src, src.replace('consume(x)', 'consume(x * 3)'));
    expect(names(r)).toEqual({ changed: ['fenced'], new: [] });
    expect(r.refusals).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(sectionSizes(r.output!)['.altinstructions']).toBe(12);
    const alt = relocations(r.output!, '.altinstructions');
    expect(alt.map((x) => x.split(' ').slice(0, 2).join(' '))).toEqual([`0 ${R_AARCH64_PREL32}`, `4 ${R_AARCH64_PREL32}`]);
    expect(alt[0]).toMatch(/ fenced\+/);
    // The replacement (in .subsection 1, past the function's symbol) changes alone: still a change of fenced.
    const swapped = await diff(src, src.replace('dmb ish"); return consume(x);', 'dmb ishst"); return consume(x);'));
    expect(names(swapped).changed).toEqual(['fenced']);
  });

  it('refuses a change to initialised data with the way out named', async () => {
    const src = `int limit = 10;\nint check(long x) { return consume(x > limit); }\n`;
    const r = await diff(src, src.replace('limit = 10', 'limit = 11'));
    expect(codes(r)).toEqual(['DATA_CHANGED']);
    expect(r.refusals[0]!.message).toMatch(/limit.*\.data\.limit.*shadow variable/);
    expect(r.outcome).toBe('unsupported');
  });
});
