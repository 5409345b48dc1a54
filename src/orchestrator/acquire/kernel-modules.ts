import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ElfPeek } from '../../elf/index.js';
import { SetupError } from '../setup-errors.js';

/**
 * Modules of an installed kernel tree (lib/modules/RELEASE: modules.order,
 * kernel/…/*.ko) picked by name, with the modules each depends on (the
 * `depends=` of its .modinfo: packages ship no modules.dep, depmod makes it
 * at install), in an order they can be loaded in. Paths are given below `kernel/`, as a build dir has them
 * (`fs/binfmt_misc.ko`), so checks written for a built kernel find them in
 * the same place.
 */
export async function modulesWithDependencies(modulesDir: string, names: readonly string[]): Promise<Array<{ rel: string; file: string }>> {
  const order = await readFile(path.join(path.dirname(modulesDir), 'modules.order'), 'utf8').catch(() => '');
  const byName = new Map<string, string>();
  for (const line of order.split('\n')) {
    const rel = line.trim().replace(/^kernel\//, '');
    if (rel.endsWith('.ko')) byName.set(path.basename(rel, '.ko').replace(/-/g, '_'), rel);
  }
  const out = new Map<string, { rel: string; file: string }>();
  const seen = new Set<string>();
  const visit = async (name: string, wantedBy?: string): Promise<void> => {
    const key = name.replace(/-/g, '_');
    if (seen.has(key)) return;
    seen.add(key);
    const rel = byName.get(key);
    if (rel === undefined) {
      throw new SetupError(
        'KERNEL_PACKAGE_MISSING',
        `${wantedBy ? `${wantedBy} depends on ${name}, but ` : ''}the kernel has no module ${name} (not in ${path.dirname(modulesDir)}/modules.order): name a module it ships`,
      );
    }
    const file = path.join(modulesDir, rel);
    const info = (await ElfPeek.read(file)).section('.modinfo')?.data.toString('latin1') ?? '';
    const depends = /(?:^|\0)depends=([^\0]*)/.exec(info)?.[1] ?? '';
    for (const d of depends.split(',').filter((x) => x !== '')) await visit(d, name);
    out.set(key, { rel, file }); // after what it depends on: the list is a load order
  };
  for (const n of names) await visit(n);
  return [...out.values()];
}
