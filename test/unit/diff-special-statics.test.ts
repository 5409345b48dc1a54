import { changedAndNew as names, kernelLikeDiffer, refusalCodes as codes } from '../helpers/kernel-like-diff.js';

// The kernel's macros as they look to gcc, in miniature: each call site of printk_ratelimited,
// WARN_ONCE and pr_debug defines a static of its own, numbered by gcc (`_rs.3`) or by
// __COUNTER__ (`__UNIQUE_ID_ddebug12.4`), and a dynamic debug descriptor carries __LINE__.
const PRELUDE = `
#define noinline __attribute__((noinline))
extern int printk(const char *fmt, ...);
extern int consume(long x);
struct ratelimit_state { int lock; int interval; int burst; int printed; int missed; long begin; };
extern int ___ratelimit(struct ratelimit_state *rs, const char *func);
#define RATELIMIT_INTERVAL 500
#define printk_ratelimited(fmt, ...) ({ static struct ratelimit_state _rs = { 0, RATELIMIT_INTERVAL, 10 }; \\
  if (___ratelimit(&_rs, __func__)) printk(fmt, ##__VA_ARGS__); })
#define WARN_ONCE(c, fmt) ({ static int __already_done __attribute__((section(".data.once"))); int __r = !!(c); \\
  if (__r && !__already_done) { __already_done = 1; printk(fmt); } __r; })
struct _ddebug { const char *modname, *function, *filename, *format; unsigned int lineno:18; unsigned int class_id:6; unsigned int flags:8; } __attribute__((aligned(8)));
extern int __dynamic_pr_debug(struct _ddebug *d, const char *fmt, ...);
#define ___PASTE(a,b) a##b
#define __PASTE(a,b) ___PASTE(a,b)
#define __UNIQUE_ID(prefix) __PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)
#define _pr_debug(id, fmt, ...) ({ static struct _ddebug __attribute__((aligned(8), section("__dyndbg"))) id = \\
  { "m", __func__, "f.c", fmt, __LINE__, 63, 0 }; if (id.flags & 1) __dynamic_pr_debug(&id, fmt, ##__VA_ARGS__); })
#define pr_debug(fmt, ...) _pr_debug(__UNIQUE_ID(ddebug), fmt, ##__VA_ARGS__)
`;

const FILE = `
int one(long x) {
  printk_ratelimited("one a %ld\\n", x);
  pr_debug("one %ld\\n", x);
  WARN_ONCE(x > 5, "big");
  printk_ratelimited("one b %ld\\n", x);
  pr_debug("one again\\n");
  WARN_ONCE(x > 9, "bigger");
  return consume(x);
}
int two(long x) {
  printk_ratelimited("two %ld\\n", x);
  pr_debug("two %ld\\n", x);
  WARN_ONCE(x < 0, "negative");
  return consume(x + 1);
}
int three(long x) { pr_debug("three\\n"); return consume(x + 3); }
`;

describe("special static locals (the kernel's macros' per-site statics)", () => {
  const { diff } = kernelLikeDiffer(PRELUDE);

  it('patches a function with several _rs, __already_done and dynamic debug descriptors without refusing', async () => {
    const r = await diff(FILE, FILE.replace('consume(x);', 'consume(x - 1);'));
    expect(codes(r)).toEqual([]);
    expect(names(r)).toEqual({ changed: ['one'], new: [] });
  });

  it('a pr_debug added before the others renumbers every descriptor, and only the function that gained it changes', async () => {
    const patched = FILE.replace('int one(long x) {\n', 'int one(long x) {\n  pr_debug("first\\n");\n');
    const r = await diff(FILE, patched);
    expect(codes(r)).toEqual([]);
    expect(names(r)).toEqual({ changed: ['one'], new: [] });
  });

  it('a line shift in a file full of WARN_ONCE and pr_debug is no change', async () => {
    const r = await diff(FILE, `\n\n\n${FILE}`);
    expect(codes(r)).toEqual([]);
    expect(r.outcome).toBe('no-change');
  });

  it('a changed rate limit makes its users changed and gives them a fresh _rs, instead of refusing changed data', async () => {
    const patched = FILE.replace('int two(long x) {', '#undef RATELIMIT_INTERVAL\n#define RATELIMIT_INTERVAL 900\nint two(long x) {');
    const r = await diff(FILE, patched);
    expect(codes(r)).toEqual([]);
    expect(names(r)).toEqual({ changed: ['two'], new: [] });
    expect(r.included.data.filter((d) => d.startsWith('_rs.'))).toHaveLength(1);
  });

  it('a call site added to a function gets a fresh flag while the running ones stay', async () => {
    const patched = FILE.replace('  WARN_ONCE(x < 0, "negative");\n', '  WARN_ONCE(x < 0, "negative");\n  WARN_ONCE(x > 1000, "huge");\n');
    const r = await diff(FILE, patched);
    expect(codes(r)).toEqual([]);
    expect(names(r)).toEqual({ changed: ['two'], new: [] });
  });

  it('still refuses two same-named ordinary statics in one function that no reference can tell apart', async () => {
    const src = `#define BUMP() ({ static long hits; ++hits; })\nint twice(long x) { return consume(x + BUMP() * 2 + BUMP()); }\n`;
    const r = await diff(src, src.replace('consume(x +', 'consume(x - 1 +'));
    expect(codes(r)).toContain('STATIC_LOCAL_UNMATCHED');
  });
});

describe('new functions and parts of functions', () => {
  const { diff } = kernelLikeDiffer(PRELUDE);
  const BASE = `int show(long x) { printk("value %ld\\n", x); return consume(x); }\n`;

  it('keeps a new global function nobody in its object calls: another object of the patch may', async () => {
    const patched = `${BASE}int klpforge_new_api(long x) { return consume(x * 7); }\n`;
    const r = await diff(BASE, patched);
    expect(names(r)).toEqual({ changed: [], new: ['klpforge_new_api'] });
    expect(r.outcome).toBe('changed');
    expect(r.included.functions).toEqual(['klpforge_new_api']);
  });

  it('keeps a new global variable', async () => {
    const r = await diff(BASE, `${BASE}long klpforge_new_counter = 3;\n`);
    expect(r.outcome).toBe('changed');
    expect(r.included.data).toEqual(['klpforge_new_counter']);
  });

  it('reports a new .cold part under its changed parent, never as a function of its own', async () => {
    const src = `extern void report(const char *what) __attribute__((cold));\nint hot(long x) { return consume(x); }\n`;
    const patched = src.replace(
      '{ return consume(x); }',
      '{ if (__builtin_expect(x < 0, 0)) { report("negative"); printk("bad %ld\\n", x); return -1; } return consume(x); }',
    );
    const r = await diff(src, patched);
    expect(names(r)).toEqual({ changed: ['hot'], new: [] });
    expect(r.changed[0]!.parts).toEqual([expect.stringMatching(/^hot\.cold/)]);
  });

  it('a global the patch makes static is the same function: matched by name, known to the running kernel as global', async () => {
    const src = `noinline int helper(long x) { return consume(x * 2); }\nint user(long x) { return helper(x) + 1; }\n`;
    const r = await diff(src, `static ${src.replace('consume(x * 2)', 'consume(x * 3)')}`);
    // Not a new function (its caller may change too: gcc knows every caller of a static function).
    expect(names(r).changed).toContain('helper');
    expect(names(r).new).toEqual([]);
    expect(r.vanished).toEqual([]);
    expect(r.notes.some((n) => n.startsWith('helper: its binding changed'))).toBe(true);
  });
});
