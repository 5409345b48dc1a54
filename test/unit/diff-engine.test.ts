import { diffObjects } from '../../src/diff/index.js';
import { changedAndNew as names, KERNEL_FLAGS, kernelLikeDiffer, refusalCodes as codes } from '../helpers/kernel-like-diff.js';

const PRELUDE = `
#define noinline __attribute__((noinline))
#define notrace __attribute__((no_instrument_function))
#define __init __attribute__((section(".init.text"))) noinline
extern void __might_sleep(const char *file, int line);
extern int printk(const char *fmt, ...);
extern int consume(long x);
`;

describe('the differ on objects compiled here like kernel objects', () => {
  const { diff, objects } = kernelLikeDiffer(PRELUDE);

  const BASE = `
int show(long x) { printk("value %ld\\n", x); return consume(x); }
int other(long x) { return consume(x + 1); }
`;

  it('finds a changed string literal, and only in the function that prints it', async () => {
    const r = await diff(BASE, BASE.replace('value %ld', 'value is %ld'));
    expect(names(r)).toEqual({ changed: ['show'], new: [] });
    expect(r.changed[0]!.firstDifference!.what).toMatch(/string literal changed \("value %ld\\n" → "value is %ld\\n"\)/);
    expect(r.outcome).toBe('changed');
    expect(r.included.sections.some((s) => s.startsWith('.rodata'))).toBe(true);
  });

  it('reports nothing for an identical rebuild', async () => {
    const r = await diff(BASE, BASE);
    expect(r.outcome).toBe('no-change');
    expect(names(r)).toEqual({ changed: [], new: [] });
  });

  it('includes a new function called from a changed one, and nothing else', async () => {
    const patched = BASE.replace(
      'int show(long x) {',
      'static noinline int helper(long x) { return consume(x * 3); }\nint show(long x) { helper(x);',
    );
    const r = await diff(BASE, patched);
    // gcc may clone the helper (helper.isra.0): a new clone is a new function.
    expect(names(r).changed).toEqual(['show']);
    expect(names(r).new).toEqual([expect.stringMatching(/^helper(\.isra\.\d+)?$/)]);
    expect(r.included.functions).toEqual([r.new[0]!.name, 'show']);
    expect(r.externals.map((e) => e.name)).toEqual(expect.arrayContaining(['consume', 'printk']));
    expect(r.externals.map((e) => e.name)).not.toContain('other');
  });

  it('treats a change of __LINE__ passed to __might_sleep as no change', async () => {
    const src = `int sleepy(long x) { __might_sleep("f.c", __LINE__); return consume(x); }\nint after(long x) { __might_sleep("f.c", __LINE__); return consume(x + 2); }\n`;
    const r = await diff(src, `\n\n\n${src}`);
    expect(r.outcome).toBe('no-change');
    expect(r.lineOnly.sort()).toEqual(['after', 'sleepy']);
  });

  it('treats a source position spelled into a string (fortify memcpy\'s "field at FILE:LINE") as no change when lines only moved, and a changed message as a change', async () => {
    const src = [
      'extern int warn_str(const char *s);',
      '#define STR2(x) #x',
      '#define STR(x) STR2(x)',
      'int copier(long x) { return warn_str("field \\"&conn->cb_saddr\\" at " "fs/nfsd/nfs4state.c" ":" STR(__LINE__)) + consume(x); }',
      '',
    ].join('\n');
    const moved = await diff(src, `\n\n${src}`);
    expect(moved.outcome).toBe('no-change');
    const reworded = await diff(src, src.replace('&conn->cb_saddr', '&conn->cb_daddr'));
    expect(names(reworded).changed).toEqual(['copier']);
  });

  it('sees a changed constant passed to another call before a __might_sleep, even when nothing else moved', async () => {
    const src = `extern int consume2(long x, int n);\nint caller(long x) { int r = consume2(x, 17); __might_sleep("f.c", 40); return r + consume(x); }\n`;
    const r = await diff(src, src.replace('consume2(x, 17)', 'consume2(x, 18)'));
    expect(names(r).changed).toEqual(['caller']);
    expect(r.lineOnly).toEqual([]);
  });

  it('still sees a real change next to a line-number change', async () => {
    const src = `int sleepy(long x) { __might_sleep("f.c", __LINE__); return consume(x); }\n`;
    const r = await diff(src, `\n${src.replace('consume(x)', 'consume(x + 7)')}`);
    expect(names(r).changed).toEqual(['sleepy']);
  });

  it('names a static local the new code uses as the running kernel knows it, though gcc renumbered it', async () => {
    // A new static of the same name shifts gcc's numbering: a's count.0 becomes count.1 (gcc 12).
    const src = `int a(void) { static long count; return consume(++count); }\n`;
    const patched = src.replace('++count', 'count += 5') + `int z(void) { static long count; return consume(count--); }\n`;
    const [orig, pat] = await objects(src, patched);
    const r = diffObjects(orig, pat, { output: true });
    const origName = orig.symbols.find((s) => s.name.startsWith('count.'))!.name;
    expect(origName).toBe('count.0');
    expect(
      pat.symbols
        .filter((s) => s.name.startsWith('count.'))
        .map((s) => s.name)
        .sort(),
    ).toEqual(['count.0', 'count.1']);
    expect(r.changed.map((f) => f.name)).toEqual(['a']);
    expect(r.externals.filter((e) => e.name.startsWith('count.')).map((e) => e.name)).toEqual([origName]);
    expect(r.output!.symbols.some((s) => s.name === origName && s.shndx === 0)).toBe(true);
  });

  it('ties same-named static locals to their own functions and refuses nothing', async () => {
    const src = `int a(void) { static long count; return consume(++count); }\nint b(void) { static long count; return consume(count += 2); }\n`;
    const r = await diff(src, src.replace('count += 2', 'count += 3'));
    expect(names(r)).toEqual({ changed: ['b'], new: [] });
    expect(r.refusals).toEqual([]);
    expect(r.warnings.filter((w) => w.includes('guessed'))).toEqual([]);
    // The static local stays the running kernel's: referenced, not copied.
    expect(r.included.data).toEqual([]);
    expect(r.externals.some((e) => /^count\.\d+$/.test(e.name) && e.local)).toBe(true);
  });

  // lockdep's keys with lockdep off: an empty struct, one static per mutex_init/init_waitqueue_head call site.
  const LOCK_KEYS = `
struct lock_class_key { };
extern void lock_init(long *obj, struct lock_class_key *key);
#define LOCK_INIT(o) do { static struct lock_class_key __key; lock_init((o), &__key); } while (0)
int setup(long *a, long *b, long *c) { LOCK_INIT(a); LOCK_INIT(b); LOCK_INIT(c); return consume(1); }
`;

  it('ties several empty static locals of one name in one function (lockdep keys) in order of use, and refuses nothing', async () => {
    const [orig, pat] = await objects(LOCK_KEYS, LOCK_KEYS.replace('consume(1)', 'consume(2)'));
    const keys = orig.symbols.filter((s) => s.name.startsWith('__key.'));
    expect(keys).toHaveLength(3);
    expect(keys.every((s) => s.size === 0n)).toBe(true);
    const r = diffObjects(orig, pat, { output: true });
    expect(r.refusals).toEqual([]);
    expect(names(r)).toEqual({ changed: ['setup'], new: [] });
    // Each stays the running kernel's: referenced by its original name, none copied as new data.
    expect(r.included.data).toEqual([]);
    expect(
      r.externals
        .filter((e) => e.name.startsWith('__key.'))
        .map((e) => e.name)
        .sort(),
    ).toEqual(keys.map((s) => s.name).sort());
  });

  it('still refuses same-named static locals in one function that hold state: which is which matters', async () => {
    const src = `#define BUMP() ({ static long hits; ++hits; })
int twice(long x) { return consume(x + BUMP() * 2 + BUMP()); }
`;
    const r = await diff(src, src.replace('consume(x +', 'consume(x - 1 +'));
    expect(codes(r)).toContain('STATIC_LOCAL_UNMATCHED');
  });

  it('warns when a changed function stops using a static local that still exists', async () => {
    const src = `
static inline __attribute__((always_inline)) long bump(void) { static long n; return ++n; }
int f(long x) { return consume(x + bump()); }
int g(long x) { return consume(x - bump()); }`;
    const r = await diff(src, src.replace('consume(x + bump())', 'consume(x + 1)'));
    expect(names(r).changed).toEqual(['f']);
    expect(r.warnings).toEqual(
      expect.arrayContaining([expect.stringMatching(/^f no longer references static local n\.\d+, which still exists/)]),
    );
  });

  it('includes a new static local as new data', async () => {
    const r = await diff(
      BASE,
      BASE.replace(
        'int other(long x) { return consume(x + 1); }',
        'int other(long x) { static long calls; calls++; return consume(x + calls); }',
      ),
    );
    expect(names(r).changed).toEqual(['other']);
    expect(r.included.data.some((d) => /^calls\.\d+$/.test(d))).toBe(true);
  });

  it('refuses a change to initialised data with the way out named', async () => {
    const src = `int limit = 10;\nint check(long x) { return consume(x > limit); }\n`;
    const r = await diff(src, src.replace('limit = 10', 'limit = 11'));
    expect(codes(r)).toEqual(['DATA_CHANGED']);
    expect(r.refusals[0]!.message).toMatch(/limit.*\.data\.limit.*shadow variable/);
    expect(r.outcome).toBe('unsupported');
  });

  it('refuses a changed read-only table', async () => {
    const src = `static const long table[4] = { 1, 2, 3, 4 };\nint pick(long x) { return consume(table[x & 3]); }\n`;
    const r = await diff(src, src.replace('3, 4', '3, 5'));
    expect(codes(r)).toContain('RODATA_CHANGED');
  });

  it('refuses a changed __init function', async () => {
    const src = `int __init setup(void) { return consume(1); }\n`;
    const r = await diff(src, src.replace('consume(1)', 'consume(2)'));
    expect(codes(r)).toEqual(['INIT_CHANGED']);
    expect(r.refusals[0]!.section).toBe('.init.text');
  });

  it('refuses a changed function without an ftrace entry, naming the cause', async () => {
    const src = `notrace int quiet(long x) { return consume(x); }\n`;
    const r = await diff(src, src.replace('consume(x)', 'consume(x - 1)'));
    expect(codes(r)).toEqual(['NO_FENTRY']);
    expect(r.refusals[0]!.message).toMatch(/quiet .*no __fentry__ call/);
  });

  it('reports the parent, with its .cold part under it, when only the .cold part changed, and takes both', async () => {
    const src = `
extern void report(const char *what) __attribute__((cold));
int hot(long x) {
  if (__builtin_expect(x < 0, 0)) { report("negative"); printk("bad %ld\\n", x); return -1; }
  return consume(x);
}`;
    const r = await diff(src, src.replace('bad %ld', 'very bad %ld'));
    const changed = names(r).changed;
    // gcc 12 -O2 splits the unlikely branch into hot.cold, where the changed string lives.
    expect(changed).toEqual(['hot']);
    expect(r.changed[0]!.parts).toEqual(['hot.cold']);
    expect(r.changed[0]!.firstDifference!.what).toBe('its child hot.cold changed');
    expect(r.included.functions).toEqual(['hot', 'hot.cold']);
  });

  it('names the gcc clone that changed (IPA-CP .constprop)', async () => {
    const src = `
static noinline int scaled(long x, long factor) { printk("scale\\n"); return consume(x * factor); }
int one(long x) { return scaled(x, 3); }
int two(long x) { return scaled(x + 1, 3); }`;
    const r = await diff(src, src.replace('printk("scale\\n")', 'printk("scaled\\n")'));
    const clone = r.changed.find((f) => f.name.startsWith('scaled'));
    expect(clone!.name).toMatch(/^scaled\.constprop\.\d+$/);
    expect(clone!.optimizations).toContain('IPA-CP clone (.constprop)');
  });

  it('lists the direct callers IPA-RA exposes when a called function changes', async () => {
    // A leaf: gcc knows the few registers it uses, and its callers may keep values in the others across the call.
    const src = `
static noinline long inner(long x) { return x * 7 + 1; }
int outer1(long x) { return consume(inner(x) * 2); }
int outer2(long x) { return consume(inner(x + 5) * 3); }`;
    const patched = src.replace('x * 7 + 1', 'x * 7 + 2');
    const r = await diff(src, patched);
    const inner = r.changed.find((f) => f.name.startsWith('inner'))!;
    expect(inner.exposedCallers).toEqual(['outer1', 'outer2']);
    expect(r.warnings.some((w) => w.startsWith('IPA-RA:'))).toBe(true);
    const off = await diff(src, patched, [...KERNEL_FLAGS, '-fno-ipa-ra']);
    expect(off.changed.find((f) => f.name.startsWith('inner'))!.exposedCallers).toBeUndefined();
  });

  it('exposes no caller when the old version already called out of the object (it clobbered every call-clobbered register)', async () => {
    const src = `
static noinline int inner(long x) { return consume(x) + 1; }
int outer1(long x) { return inner(x) * 2; }
int outer2(long x) { return inner(x + 5) * 3; }`;
    const r = await diff(src, src.replace('consume(x) + 1', 'consume(x) + 2'));
    expect(r.changed.find((f) => f.name.startsWith('inner'))!.exposedCallers).toBeUndefined();
    expect(r.warnings.filter((w) => w.startsWith('IPA-RA:'))).toEqual([]);
  });

  it('honours kpatch directives: ignored functions and callbacks', async () => {
    const directives = `
void *__kpatch_ignore_func_other __attribute__((section(".kpatch.ignore.functions"))) = other;
static int pre(void *obj) { printk("pre\\n"); return 0; }
struct cb { int (*callback)(void *); char *objname; };
static struct cb pre_data __attribute__((section(".kpatch.callbacks.pre_patch"), used)) = { pre, 0 };
`;
    const patched = BASE.replace('value %ld', 'value: %ld').replace('consume(x + 1)', 'consume(x + 2)') + directives;
    const r = await diff(BASE, patched);
    expect(names(r)).toEqual({ changed: ['show'], new: [] });
    expect(r.callbacks.map((c) => `${c.kind}:${c.function}`)).toEqual(['pre_patch:pre']);
    expect(r.included.functions).toContain('pre');
    expect(r.refusals).toEqual([]);
  });
});
