import { decodeTaint, taintLetters } from '../../src/verify/judge/taint.js';

describe('decodeTaint (/proc/sys/kernel/tainted)', () => {
  test('an untainted kernel has no flags and nothing unexpected', () => {
    const t = decodeTaint('0\n');
    expect(t).not.toBeNull();
    expect(t!.flags).toEqual([]);
    expect(t!.unexpected).toEqual([]);
    expect(taintLetters(t!)).toBe('');
  });

  test('livepatch (K, bit 15) plus out-of-tree (O, bit 12) is what a loaded livepatch leaves, and is accepted', () => {
    const t = decodeTaint(String(2 ** 15 + 2 ** 12))!;
    expect(t.value).toBe(36864);
    expect(taintLetters(t)).toBe('OK');
    expect(t.unexpected).toEqual([]);
  });

  test('a warning (W, bit 9) and a death (D, bit 7) alongside K are reported as unexpected', () => {
    const t = decodeTaint(String(2 ** 15 + 2 ** 9 + 2 ** 7))!;
    expect(taintLetters(t)).toBe('DWK');
    expect(t.unexpected.map((f) => f.letter)).toEqual(['D', 'W']);
    expect(t.unexpected[1]!.name).toMatch(/warning/);
  });

  test('a bit this table does not know is still reported, as unknown and unexpected', () => {
    const t = decodeTaint(String(2 ** 20))!;
    expect(t.flags).toEqual([{ bit: 20, letter: '?', name: 'unknown taint bit 20' }]);
    expect(t.unexpected).toHaveLength(1);
  });

  test('text that is not a decimal taint value is refused', () => {
    expect(decodeTaint('')).toBeNull();
    expect(decodeTaint("cat: can't open")).toBeNull();
    expect(decodeTaint('-1')).toBeNull();
  });
});
