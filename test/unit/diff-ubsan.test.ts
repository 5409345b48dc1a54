import { diffObjects, type DiffResult } from '../../src/diff/index.js';
import type { ElfObject } from '../../src/elf/index.js';
import { changedAndNew as names, KERNEL_FLAGS, kernelLikeDiffer, refusalCodes as codes } from '../helpers/kernel-like-diff.js';
import { S390X_KERNEL_FLAGS, s390xKernelLikeDiffer } from '../helpers/toolchain-s390x.js';

/**
 * CONFIG_UBSAN's checks (the kernel's -fsanitize=shift,bounds with handlers,
 * not traps) give each check site anonymous writable data: its source location
 * and type descriptors in .data..Lubsan_* (s390x's -fPIE: .data.rel.local..Lubsan_data*).
 * The new code gets fresh copies, as kpatch does: the handler only marks a
 * location reported. Neither a changed function using them nor a line shift is refused.
 */
const UBSAN = ['-fsanitize=shift', '-fsanitize=bounds'];
const SRC = `
extern int consume(long x);
int tbl[8];
int show(long x, int s) { return consume(tbl[x] << s); }
int other(long x, int s) { return consume((x + 1) << s); }
`;
const PATCHED = SRC.replace('(x + 1) << s', '(x + 2) << s');

const ubsanSections = (obj: ElfObject) => obj.sections.map((s) => s.name).filter((n) => n.includes('Lubsan_'));

function expectCopies(r: DiffResult): void {
  expect(names(r)).toEqual({ changed: ['other'], new: [] });
  expect(codes(r)).toEqual([]);
  const copied = ubsanSections(r.output!);
  // other's shift check: its location (data) and the types it names, not show's.
  expect(copied.some((n) => n.includes('Lubsan_data'))).toBe(true);
  expect(copied.some((n) => n.includes('Lubsan_type'))).toBe(true);
}

describe('UBSAN check sites: fresh copies of their data for the new code', () => {
  const x86 = kernelLikeDiffer('');
  const s390x = s390xKernelLikeDiffer('');

  it('x86_64: a changed function with a shift check is patched, its .data..Lubsan_* copied', async () => {
    const [o, p] = await x86.objects(SRC, PATCHED, [...KERNEL_FLAGS, ...UBSAN]);
    expectCopies(diffObjects(o, p, { output: true }));
  });

  it('s390x: the same, with -fPIE naming the location data .data.rel.local..Lubsan_data*', async () => {
    const [o, p] = await s390x.objects(SRC, PATCHED, [...S390X_KERNEL_FLAGS, ...UBSAN]);
    const r = diffObjects(o, p, { output: true });
    expectCopies(r);
    expect(ubsanSections(p).some((n) => n.startsWith('.data.rel.local..Lubsan_data'))).toBe(true);
  });

  it.each([
    ['x86_64', () => x86.objects(SRC, `\n\n${SRC}`, [...KERNEL_FLAGS, ...UBSAN])],
    ['s390x', () => s390x.objects(SRC, `\n\n${SRC}`, [...S390X_KERNEL_FLAGS, ...UBSAN])],
  ])('%s: a line moved above the check sites is no change (only the line of their source locations differs)', async (_m, build) => {
    const [o, p] = await build();
    const r = diffObjects(o, p, { output: true });
    expect(names(r)).toEqual({ changed: [], new: [] });
    expect(codes(r)).toEqual([]);
  });

  it('a check site whose column or file changed is still a change', async () => {
    const moved = SRC.replace('return consume((x + 1) << s);', 'return consume(  (x + 1) << s);');
    const [o, p] = await x86.objects(SRC, moved, [...KERNEL_FLAGS, ...UBSAN]);
    expect(names(diffObjects(o, p, { output: true })).changed).toEqual(['other']);
  });
});
