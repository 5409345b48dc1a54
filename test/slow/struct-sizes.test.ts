import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { archRules } from '../../src/diff/arch.js';
import { ObjectView } from '../../src/diff/model/object-view.js';
import { indexSpecialEntries } from '../../src/diff/rules/special-entries.js';
import { EM, readElfFile } from '../../src/elf/index.js';
import { probeStructSizes } from '../../src/orchestrator/index.js';
import { fixtureKernel } from '../helpers/kernel.js';

/**
 * The special-section entry sizes of the target kernel, from a probe compiled
 * against its build tree, and what the differ infers from relocation layouts
 * alone: on the fixture kernel the two must agree.
 */
describe('special-section entry sizes of the fixture kernel', () => {
  const kernel = fixtureKernel();
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('the probe reads every struct size the config has, and the bug_entry line offset', async () => {
    const sizes = await probeStructSizes(kernel.plain, tmp.path);
    expect(Object.fromEntries(sizes.entrySizes)).toEqual({
      '.altinstructions': 12,
      __ex_table: 12,
      __jump_table: 16,
      __bug_table: 12,
      '.static_call_sites': 8,
      '.orc_unwind': 6,
      '.parainstructions': 16,
      '.printk_index': 8,
    });
    expect(sizes.bugLineOffset).toBe(8);
  }, 120_000);

  it('sizes inferred from relocation layouts match the probe', async () => {
    const sizes = await probeStructSizes(kernel.plain, path.join(tmp.path, 'again'));
    const checked = new Set<string>();
    for (const object of ['kernel/signal.o', 'fs/read_write.o', 'arch/x86/kernel/process.o', 'kernel/exit.o', 'kernel/sys.o']) {
      const obj = await readElfFile(path.join(kernel.fsections, object));
      const index = indexSpecialEntries(new ObjectView(obj, archRules(EM.X86_64)!, object), new Map());
      for (const [name, resolved] of index.sizes) {
        const probed = sizes.entrySizes.get(name);
        if (probed === undefined) continue;
        expect({ object, name, size: resolved.size }).toEqual({ object, name, size: probed });
        checked.add(name);
      }
    }
    expect([...checked].sort()).toEqual(expect.arrayContaining(['.altinstructions', '__bug_table', '__ex_table', '__jump_table']));
  }, 120_000);
});
