import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readElfFile, STT } from '../../src/elf/index.js';
import { KallsymsIndex } from '../../src/klp/index.js';
import { fixtureKernel } from '../helpers/kernel.js';

/**
 * sympos as the livepatch core counts it, on the fixture kernel: the position
 * of a local among its namesakes in kallsyms order (by address; System.map,
 * written by nm -n, is an independent listing of that order).
 */
describe("sympos of the fixture kernel's symbols", () => {
  const kernel = fixtureKernel();

  it('each copy of a name gcc repeats across files gets its rank in address order, found through its file', async () => {
    const vmlinux = await readElfFile(kernel.vmlinux);
    const index = new KallsymsIndex(vmlinux, 'vmlinux');
    const map = (await readFile(path.join(kernel.plain, 'System.map'), 'utf8')).split('\n');
    const name = 'cpumask_weight.constprop.0';
    const ranked = map.filter((l) => l.endsWith(` ${name}`)).map((l) => BigInt(`0x${l.split(' ')[0]}`));
    expect(ranked.length).toBeGreaterThan(2);

    let file = '';
    let checked = 0;
    const files = new Map<string, number>();
    for (const s of vmlinux.symbols) {
      if (s.type === STT.FILE) file = s.name;
      if (s.name === name) files.set(file, (files.get(file) ?? 0) + 1);
    }
    for (const s of vmlinux.symbols) {
      if (s.type === STT.FILE) {
        file = s.name;
        continue;
      }
      if (s.name !== name || files.get(file) !== 1) continue;
      const r = index.sympos(name, file);
      expect(r).toEqual({ found: true, sympos: ranked.indexOf(s.value) + 1, address: s.value });
      checked++;
    }
    expect(checked).toBeGreaterThan(2);
    expect(index.sympos(name)).toMatchObject({ found: false, reason: 'ambiguous' });
    expect(index.sympos(name, 'no-such-file.c')).toMatchObject({ found: false, reason: 'not-in-file' });
  }, 120_000);

  it('a unique name is sympos 0, and a missing one is reported', async () => {
    const index = new KallsymsIndex(await readElfFile(kernel.vmlinux), 'vmlinux');
    expect(index.sympos('cmdline_proc_show', 'cmdline.c')).toMatchObject({ found: true, sympos: 0 });
    expect(index.sympos('klpforge_no_such_symbol')).toEqual({ found: false, reason: 'missing', candidates: [] });
  }, 120_000);

  it('a module counts in its own symbol table order', async () => {
    const ko = await readElfFile(path.join(kernel.plain, 'fs/binfmt_misc.ko'));
    const index = new KallsymsIndex(ko, 'module');
    expect(index.sympos('bm_status_read', 'binfmt_misc.c')).toMatchObject({ found: true, sympos: 0 });
  }, 60_000);
});
