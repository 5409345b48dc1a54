import { canonicalName, parentOf } from '../../src/diff/index.js';

describe("gcc's (and clang's) naming habits", () => {
  it.each([
    ['foo.isra.3', 'foo.isra'],
    ['foo.constprop.0.isra.1', 'foo.constprop.isra'],
    ['foo.part.2', 'foo.part'],
    ['foo.cold', 'foo.cold'],
    ['foo.cold.7', 'foo.cold'],
    ['foo.part.0.cold', 'foo.part.cold'],
    ['seen.12', 'seen'],
    ['__already_done.62', '__already_done'],
    ['__UNIQUE_ID_ddebug282', '__UNIQUE_ID_ddebug'],
    ['__UNIQUE_ID_ddebug1425.3', '__UNIQUE_ID_ddebug'],
    ['_rs.17', '_rs'],
    ['foo.lto_priv.0', 'foo.lto_priv'],
    ['helper.llvm.1234567', 'helper.llvm'],
    ['cmdline_proc_show', 'cmdline_proc_show'],
    ['.text.foo.constprop.0', '.text.foo.constprop'],
  ])('%s is %s in every build', (name, canonical) => {
    expect(canonicalName(name)).toBe(canonical);
  });

  it.each([
    ['foo.cold', 'foo'],
    ['foo.part.0', undefined],
    ['foo.part.0.cold', 'foo.part.0'],
    ['foo.isra.0.cold', 'foo.isra.0'],
    ['foo.isra.0', undefined],
    ['foo.constprop.1', undefined],
    ['foo', undefined],
  ])('the parent of %s is %s', (name, parent) => {
    expect(parentOf(name)).toBe(parent);
  });
});
