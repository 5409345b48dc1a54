import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { diffObjects } from '../../src/diff/index.js';
import { EM, type ElfObject, readElfFile } from '../../src/elf/index.js';
import { archRules } from '../../src/diff/arch.js';
import { changedAndNew as names, refusalCodes as codes } from '../helpers/kernel-like-diff.js';
import { ppc64leKernelLikeDiffer } from '../helpers/toolchain-ppc64le.js';
import { relocations, sectionSizes } from '../helpers/output-sections.js';

// elf.h: R_PPC64_REL24 = 10, R_PPC64_REL32 = 26, R_PPC64_ADDR64 = 38, R_PPC64_REL64 = 44,
// R_PPC64_TOC16_HA = 50, R_PPC64_TOC16_LO_DS = 64.
const R_PPC64_REL24 = 10;
const R_PPC64_REL32 = 26;
const R_PPC64_ADDR64 = 38;
const R_PPC64_REL64 = 44;
const R_PPC64_TOC16_HA = 50;

/**
 * Kernel-like C for ppc64le, with the kernel's own asm layouts
 * (arch/powerpc/include/asm): EX_TABLE (extable.h: two relative ints), a
 * CPU feature section (feature-fixups.h: struct fixup_entry, 48 bytes, its
 * offsets counted from the entry), and a WARN's bug entry (bug.h with
 * CONFIG_DEBUG_BUGVERBOSE: relative pointers, 12 bytes).
 */
const PRELUDE = `
#define noinline __attribute__((noinline))
#define notrace __attribute__((no_instrument_function))
extern void __might_sleep(const char *file, int line);
extern int _printk(const char *fmt, ...);
extern int consume(long x);
extern long ext_a, ext_b, ext_c;
#define WARN_ON(x) ({ int __w = !!(x); if (__builtin_expect(__w, 0)) asm volatile( \\
  "1: twi 31,0,0\\n" \\
  ".section .rodata.str,\\"aMS\\",@progbits,1\\n" "3: .asciz \\"f.c\\"\\n" ".previous\\n" \\
  ".section __bug_table,\\"aw\\"\\n" "2: .4byte 1b - .\\n" " .4byte 3b - .\\n" " .short %0, %1\\n" " .org 2b+%2\\n" ".previous\\n" \\
  : : "i" (__LINE__), "i" (1 << 0), "i" (12)); __w; })
static inline __attribute__((always_inline)) long load_user(const long *p) {
  long v = -14;
  asm volatile("0: ld %0,0(%1)\\n1:\\n"
    ".section __ex_table,\\"a\\"\\n.balign 4\\n.long 0b - .\\n.long 1b - .\\n.previous\\n"
    : "+r" (v) : "b" (p));
  return v;
}
/* BEGIN_FTR_SECTION nop FTR_SECTION_ELSE sync ALT_FTR_SECTION_END(mask, mask) */
#define FTR_SYNC_IF(mask) asm volatile("97: nop\\n98:\\n" \\
  ".pushsection __ftr_alt_97,\\"a\\"\\n.align 2\\n99: sync\\n100:\\n.popsection\\n" \\
  ".pushsection __ftr_fixup,\\"a\\"\\n.align 3\\n101: .8byte %0\\n.8byte %0\\n" \\
  ".8byte 97b-101b\\n.8byte 98b-101b\\n.8byte 99b-101b\\n.8byte 100b-101b\\n.popsection\\n" :: "i" (mask) : "memory")
#define FTR_SYNC() FTR_SYNC_IF(0x100)
`;

const BASE = `
int show(long x) { _printk("value %ld\\n", x); return consume(x); }
int other(long x) { _printk("other %ld\\n", x); return consume(x + 1); }
`;

describe('the differ on ppc64le objects compiled here like Linux 6.1 objects', () => {
  const { diff, objects } = ppc64leKernelLikeDiffer(PRELUDE);

  it('has rules for ppc64le: nothing refused as an unsupported architecture, the objects little-endian', async () => {
    const [o, p] = await objects(BASE, BASE);
    expect(o.ident.machine).toBe(EM.PPC64);
    expect(p.littleEndian).toBe(true);
    expect(archRules(EM.PPC64)?.name).toBe('ppc64le');
  });

  it('reports nothing for an identical rebuild', async () => {
    const r = await diff(BASE, BASE);
    expect(r.outcome).toBe('no-change');
    expect(names(r)).toEqual({ changed: [], new: [] });
    expect(r.refusals).toEqual([]);
  });

  it('finds a changed function, recognises its global entry and bl _mcount, and takes neither .TOC. nor the string from the kernel', async () => {
    const r = await diff(BASE, BASE.replace('consume(x + 1)', 'consume(x + 2)'));
    expect(names(r)).toEqual({ changed: ['other'], new: [] });
    expect(r.refusals).toEqual([]);
    const rel = relocations(r.output!, '.text.other');
    expect(rel.slice(0, 3)).toEqual(['0 252 .TOC.+0', '4 250 .TOC.+4', `12 ${R_PPC64_REL24} _mcount+0`]);
    // .TOC. stays undefined for the module's own link; it is no external of the running kernel.
    expect(r.externals.map((e) => e.name).sort()).toEqual(['_mcount', '_printk', 'consume']);
    expect(r.output!.symbols.some((s) => s.name === '.TOC.' && s.shndx === 0)).toBe(true);
  });

  it('finds a changed string literal, reached TOC-relative, only in the function that prints it', async () => {
    const r = await diff(BASE, BASE.replace('value %ld', 'value is %ld'));
    expect(names(r)).toEqual({ changed: ['show'], new: [] });
    expect(r.changed[0]!.firstDifference!.what).toMatch(/string literal changed \("value %ld\\n" → "value is %ld\\n"\)/);
    expect(r.refusals).toEqual([]);
  });

  it('refuses a changed notrace function, naming the missing _mcount call', async () => {
    const src = `notrace int quiet(long x) { return consume(x); }\n`;
    const r = await diff(src, src.replace('consume(x)', 'consume(x - 1)'));
    expect(codes(r)).toEqual(['NO_FENTRY']);
    expect(r.refusals[0]!.message).toMatch(/quiet .*bl _mcount/);
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
    expect(r.externals.find((e) => e.name.startsWith('scale'))).toMatchObject({ local: true, kind: 'function' });
    expect(r.changed[0]!.optimizations).toContain(`calls ${r.new[0]!.name}, which is new`);
  });

  const TOC = `
long fa(long x) { return consume(ext_a + x); }
long fb(long x) { return consume(ext_b + x); }
`;
  const swapped = `
long fb(long x) { return consume(ext_b + x); }
long fa(long x) { return consume(ext_a + x); }
`;

  it('sees through .toc: slots renumbered with the same symbols are no change', async () => {
    const [o, p] = await objects(TOC, swapped);
    // The two builds really number their .toc slots differently.
    const slotOf = (obj: ElfObject, fn: string) =>
      relocations(obj, `.text.${fn}`).find((x) => x.split(' ')[1] === String(R_PPC64_TOC16_HA) && x.includes(' .toc+'));
    expect(slotOf(o, 'fa')).toMatch(/\.toc\+0$/);
    expect(slotOf(p, 'fa')).toMatch(/\.toc\+8$/);
    const r = await diff(TOC, swapped);
    expect(r.outcome).toBe('no-change');
    expect(r.refusals).toEqual([]);
  });

  it('sees a .toc slot naming another symbol, and carries only the slots the new code loads', async () => {
    const r = await diff(TOC, swapped.replace('ext_b + x', 'ext_c + x'));
    expect(names(r)).toEqual({ changed: ['fb'], new: [] });
    expect(r.changed[0]!.firstDifference!.what).toMatch(/ext_b → ext_c/);
    expect(sectionSizes(r.output!)['.toc']).toBe(8);
    expect(relocations(r.output!, '.toc')).toEqual([`0 ${R_PPC64_ADDR64} ext_c+0`]);
    expect(relocations(r.output!, '.text.fb').filter((x) => x.includes(' .toc+'))).toEqual([
      expect.stringMatching(new RegExp(`^\\d+ ${R_PPC64_TOC16_HA} \\.toc\\+0$`)),
      expect.stringMatching(/^\d+ 64 \.toc\+0$/),
    ]);
    expect(r.externals.map((e) => e.name)).toContain('ext_c');
    expect(r.externals.map((e) => e.name)).not.toContain('ext_a');
  });

  it('treats __LINE__ renumbered in li immediates before __might_sleep as no change', async () => {
    const src = `
int sleepy(long x) { __might_sleep("f.c", __LINE__); return consume(x); }
#line 20000
int high(long x) { __might_sleep("f.c", __LINE__); return consume(x + 2); }
`;
    const shifted = `\n\n\n${src.replace('#line 20000', '#line 20003')}`;
    const r = await diff(src, shifted);
    expect(r.outcome).toBe('no-change');
    expect(r.lineOnly.sort()).toEqual(['high', 'sleepy']);
    // A changed constant passed to another call before it is a change.
    const other = `extern int consume2(long x, int n);\nint caller(long x) { int r = consume2(x, 17); __might_sleep("f.c", 40); return r + consume(x); }\n`;
    const real = await diff(other, other.replace('consume2(x, 17)', 'consume2(x, 18)'));
    expect(names(real).changed).toEqual(['caller']);
    expect(real.lineOnly).toEqual([]);
  });

  it('treats a WARN_ON moved down as no change (the __bug_table line field is ignored)', async () => {
    const src = `int checked(long x) { WARN_ON(x > 3); return consume(x); }\n`;
    expect((await diff(src, `\n\n${src}`)).outcome).toBe('no-change');
  });

  it("carries a changed function's __ex_table, __ftr_fixup and __bug_table entries, and no other function's", async () => {
    const src = `
int reader(const long *p) { WARN_ON(p == 0); FTR_SYNC(); return consume(load_user(p)); }
int bystander(const long *p) { WARN_ON(p == (void *)8); FTR_SYNC(); return consume(load_user(p) + 1); }`;
    const r = await diff(src, src.replace('consume(load_user(p))', 'consume(load_user(p) * 2)'));
    expect(names(r)).toEqual({ changed: ['reader'], new: [] });
    expect(r.refusals).toEqual([]);
    const sizes = sectionSizes(r.output!);
    expect(sizes['__ex_table']).toBe(8);
    expect(sizes['__ftr_fixup']).toBe(48);
    expect(sizes['__bug_table']).toBe(12);
    const ex = relocations(r.output!, '__ex_table');
    expect(ex.map((x) => x.split(' ').slice(0, 2).join(' '))).toEqual([`0 ${R_PPC64_REL32}`, `4 ${R_PPC64_REL32}`]);
    expect(ex.every((x) => x.includes(' reader+'))).toBe(true);
    // The fixup's offsets count from the entry: the addends are the site's offset plus the field's place.
    const ftr = relocations(r.output!, '__ftr_fixup');
    expect(ftr.map((x) => x.split(' ').slice(0, 2).join(' '))).toEqual([16, 24, 32, 40].map((o) => `${o} ${R_PPC64_REL64}`));
    expect(ftr.slice(0, 2).every((x) => x.includes(' reader+'))).toBe(true);
    expect(ftr.slice(2).every((x) => x.includes(' __ftr_alt_97+'))).toBe(true);
    expect(sizes['__ftr_alt_97']).toBeGreaterThan(0);
  });

  it('sees a change in a feature fixup alone (its feature mask), the site 16 bytes or less from the end of its function', async () => {
    // fence's site is its last instruction before blr: only an offset counted from the entry, not from the
    // start_off field 16 bytes into it, lands in fence.
    const src = `void fence(void) { FTR_SYNC_IF(0x100); }\nint plain(long x) { return consume(x + 1); }\n`;
    const r = await diff(src, src.replace('0x100', '0x200'));
    expect(names(r).changed).toEqual(['fence']);
    expect(r.changed[0]!.firstDifference!.what).toBe('its __ftr_fixup entries changed');
    expect(sectionSizes(r.output!)['__ftr_fixup']).toBe(48);
  });

  it('refuses a change to initialised data with the way out named', async () => {
    const src = `int limit = 10;\nint check(long x) { return consume(x > limit); }\n`;
    const r = await diff(src, src.replace('limit = 10', 'limit = 11'));
    expect(codes(r)).toEqual(['DATA_CHANGED']);
    expect(r.refusals[0]!.message).toMatch(/limit.*\.data\.limit.*shadow variable/);
    expect(r.outcome).toBe('unsupported');
  });

  it('refuses big-endian ppc64 (ELFv1), which shares EM_PPC64 with ppc64le but not its rules', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klpforge-ppc64-be-'));
    try {
      await writeFile(path.join(dir, 'f.s'), '.section .text.f,"ax",@progbits\n.globl f\n.type f,@function\nf: blr\n.size f,.-f\n');
      await execa('powerpc64le-linux-gnu-as', ['-a64', '-mbig', 'f.s', '-o', 'f.o'], { cwd: dir });
      const obj = await readElfFile(path.join(dir, 'f.o'));
      expect([obj.ident.machine, obj.littleEndian]).toEqual([EM.PPC64, false]);
      const r = diffObjects(obj, obj);
      expect(codes(r)).toEqual(['UNSUPPORTED_ARCH']);
      expect(r.refusals[0]!.message).toMatch(/ppc64 \(big-endian\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
