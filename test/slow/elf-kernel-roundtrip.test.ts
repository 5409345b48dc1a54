import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { ElfError, parseElf, readElfFile, serializeElf, writeElfFile } from '../../src/elf/index.js';
import { fixtureKernel } from '../helpers/kernel.js';
import { kernelObjects } from '../helpers/kernel-objects.js';
import { modelDifference } from '../helpers/model.js';
import { firstDifference, readelfNormalized } from '../helpers/readelf.js';
import { linkRelocatable } from '../helpers/toolchain.js';

/**
 * The foundation's promise: every object of the Linux 6.1 fixture kernel
 * survives read → write with `readelf -aW` unchanged but for file offsets,
 * and read → write → read gives an equal model.
 */
describe('every object of the fixture kernel round-trips through the ELF layer', () => {
  const kernel = fixtureKernel();
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  async function check(obj: string, index: number): Promise<string | undefined> {
    const bytes = await readFile(obj);
    if (bytes[4] === 1) return refusedAs32Bit(obj, bytes);
    const model = parseElf(bytes, obj);
    const out = path.join(tmp.path, `${index}-${path.basename(obj)}`);
    await writeElfFile(out, model);
    const d = firstDifference(await readelfNormalized(obj), await readelfNormalized(out));
    if (d) return `${obj}: readelf differs at ${d}`;
    const m = modelDifference(model, parseElf(await readFile(out), out));
    if (m) return `${obj}: model differs after a round trip: ${m}`;
    return undefined;
  }

  // The x86 boot and real-mode code is 16/32-bit (ELFCLASS32), never livepatched:
  // those objects must be refused with the typed error, and nothing else may be 32-bit.
  function refusedAs32Bit(obj: string, bytes: Buffer): string | undefined {
    if (!/\/arch\/x86\/(boot|realmode)\//.test(obj)) return `${obj}: unexpected 32-bit object`;
    try {
      parseElf(bytes, obj);
    } catch (e) {
      if (e instanceof ElfError && e.code === 'ELF_UNSUPPORTED') return undefined;
      return `${obj}: ${String(e)}`;
    }
    return `${obj}: a 32-bit object was accepted`;
  }

  it.each([
    ['plain (distro flags)', kernel.plain],
    ['function-sections', kernel.fsections],
  ])(
    'all .o and .ko files of the %s build',
    async (_label, buildDir) => {
      // The function-sections vmlinux.o has its own test below.
      const objects = (await kernelObjects(buildDir)).filter((o) => o !== kernel.vmlinuxO);
      expect(objects.length).toBeGreaterThan(300);
      const limit = pLimit(2);
      const failures = (await Promise.all(objects.map((o, i) => limit(() => check(o, i))))).filter(Boolean);
      expect(failures).toEqual([]);
    },
    900_000,
  );

  it('the function-sections vmlinux.o (tens of thousands of sections) round-trips and ld -r accepts it', async () => {
    const obj = kernel.vmlinuxO;
    expect((await stat(obj)).size).toBeGreaterThan(1 << 20);
    const model = await readElfFile(obj);
    expect(model.sections.length).toBeGreaterThan(20_000);
    expect(await check(obj, 0)).toBeUndefined();
    const out = path.join(tmp.path, 'vmlinux.rewritten.o');
    await writeFile(out, serializeElf(model));
    await linkRelocatable(tmp.path, out);
  }, 600_000);
});
