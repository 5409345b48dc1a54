import { readdirSync } from 'node:fs';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { writeElfFile } from '../../src/elf/index.js';
import { probeStructSizes, type BuildIndex, type StructSizes } from '../../src/orchestrator/index.js';
import { FIXTURE_DIR, fixtureCases, fixtureIndex, readExpectation, runCase } from '../helpers/diff-fixtures.js';
import { fixtureKernel } from '../helpers/kernel.js';
import { readelfNormalized } from '../helpers/readelf.js';
import { linkRelocatable } from '../helpers/toolchain.js';

/**
 * Every case under kernel-fixtures/diff: a patch against the Linux 6.1 fixture
 * kernel, rebuilt object by object (only what the patch touches) with the
 * function-sections build's own command lines, then diffed. The changed and
 * new functions, refusals and line-only functions must be exactly those
 * written in the case's expect.json, and every output object must be one
 * readelf reads without complaint and ld -r accepts. A case whose expect.json
 * says `"tree": "lockdep"` runs on the lockdep-on tree instead (its original
 * objects compiled there first, see runCase); the entry sizes probed on the
 * function-sections build serve it too.
 */
describe('differ fixtures on the Linux 6.1 kernel', () => {
  const kernel = fixtureKernel();
  let index: BuildIndex;
  let tmp: DirectoryResult;
  let sizes: StructSizes;
  beforeAll(async () => {
    index = await fixtureIndex(kernel);
    tmp = await tmpDir({ unsafeCleanup: true });
    // As the build command will: entry sizes from the target kernel itself.
    sizes = await probeStructSizes(kernel.fsections, tmp.path);
  }, 120_000);
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('has at least 25 cases', async () => {
    expect((await fixtureCases()).length).toBeGreaterThanOrEqual(25);
  });

  // jest needs the case names when the file loads.
  const cases = readdirSync(FIXTURE_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  it.each(cases)(
    '%s',
    async (name) => {
      const expected = await readExpectation(name);
      const actual = await runCase(kernel, name, index, sizes.entrySizes);
      expect(Object.keys(actual.objects).sort()).toEqual(Object.keys(expected.objects).sort());
      for (const [object, want] of Object.entries(expected.objects)) {
        const got = actual.objects[object]!;
        expect({ object, outcome: got.outcome, changed: got.changed, new: got.new, refusals: got.refusals.sort() }).toEqual({
          object,
          outcome: want.outcome,
          changed: want.changed,
          new: want.new,
          refusals: [...want.refusals].sort(),
        });
        if (want.lineOnly) expect(got.lineOnly!.sort()).toEqual([...want.lineOnly].sort());
        if (want.callbacks) expect(got.callbacks).toEqual(want.callbacks);
        const result = actual.results[object]!;
        for (const re of want.includedData ?? [])
          expect(result.included.data).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(re))]));
        if (want.includedFunctions) expect(result.included.functions).toEqual(expect.arrayContaining(want.includedFunctions));
        const output = result.output;
        if (want.outputSections) expect(output!.sections.map((sec) => sec.name)).toEqual(expect.arrayContaining(want.outputSections));
        if (got.outcome === 'changed') {
          expect(output).toBeDefined();
          const file = path.join(tmp.path, `${name}-${object.replace(/\//g, '_')}`);
          await writeElfFile(file, output!);
          await readelfNormalized(file);
          await linkRelocatable(tmp.path, file);
        }
      }
      expect(actual.outcome).toBe(expected.outcome);
    },
    300_000,
  );
});
