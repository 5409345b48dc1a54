import { inferEntrySize } from '../../src/diff/index.js';

const rows = (size: number, count: number, fields: Array<[number, boolean]>) =>
  Array.from({ length: count }, (_v, e) => fields.map(([offset, code]) => ({ offset: e * size + offset, code }))).flat();

describe('inferring special-section entry sizes from relocation layouts', () => {
  it('finds struct bug_entry (12 bytes: two relocated fields, then line and flags)', () => {
    expect(
      inferEntrySize(
        12 * 5,
        rows(12, 5, [
          [0, true],
          [4, false],
        ]),
      ),
    ).toBe(12);
  });
  it('finds struct jump_entry (16 bytes: code, target, key)', () => {
    expect(
      inferEntrySize(
        16 * 3,
        rows(16, 3, [
          [0, true],
          [4, true],
          [8, false],
        ]),
      ),
    ).toBe(16);
  });
  it('tells {s32 addr; s32 key;} (8 bytes) from two 4-byte entries by what the fields point at', () => {
    expect(
      inferEntrySize(
        8 * 4,
        rows(8, 4, [
          [0, true],
          [4, false],
        ]),
      ),
    ).toBe(8);
  });
  it('reads a layout no smaller size explains as a single entry, and an empty section as nothing', () => {
    expect(
      inferEntrySize(20, [
        { offset: 0, code: true },
        { offset: 3, code: true },
        { offset: 11, code: false },
      ]),
    ).toBe(20);
    expect(inferEntrySize(0, [])).toBeUndefined();
    expect(inferEntrySize(16, [])).toBeUndefined();
  });
});
