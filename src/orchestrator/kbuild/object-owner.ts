import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BuildIndex, ObjectPath } from './build-index.js';

/** What a built object is linked into: vmlinux, or a loadable module. */
export type ObjectOwner = { kind: 'vmlinux' } | { kind: 'module'; name: string; ko: string };

/**
 * Maps each module object of a kernel build to its module, from kbuild's own
 * records: `modules.order` lists the modules, each `NAME.mod` the objects it
 * links. Everything else built into the kernel is vmlinux's.
 */
export async function objectOwners(buildDir: string): Promise<(object: ObjectPath) => ObjectOwner> {
  const owners = new Map<string, ObjectOwner>();
  let order = '';
  try {
    order = await readFile(path.join(buildDir, 'modules.order'), 'utf8');
  } catch {
    // No modules built (CONFIG_MODULES=n, or nothing =m): everything is vmlinux.
  }
  for (const line of order.split('\n')) {
    const ko = line.trim().replace(/\.o$/, '.ko');
    if (ko === '') continue;
    const base = ko.slice(0, -'.ko'.length);
    const name = path.basename(base).replace(/-/g, '_');
    let mod = '';
    try {
      mod = await readFile(path.join(buildDir, `${base}.mod`), 'utf8');
    } catch {
      mod = `${base}.o`;
    }
    // kvm.mod lists `arch/x86/kvm/../../../virt/kvm/kvm_main.o`: the index knows it as virt/kvm/kvm_main.o.
    for (const obj of mod.split(/\s+/)) if (obj !== '') owners.set(path.posix.normalize(obj), { kind: 'module', name, ko });
  }
  return (object) => owners.get(object) ?? { kind: 'vmlinux' };
}

/**
 * Owners in a tree where only some objects were compiled (the lazy
 * original): kbuild wrote each object's module into its command line
 * (-DMODULE, -DKBUILD_MODNAME), and the running kernel's modules.order
 * (lib/modules/RELEASE/modules.order, `kernel/fs/binfmt_misc.ko`) says
 * where that module's file is, relative to its `kernel/` dir.
 */
export async function recordedObjectOwners(index: BuildIndex, modulesOrder: string): Promise<(object: ObjectPath) => ObjectOwner> {
  const koByName = new Map<string, string>();
  const order = await readFile(modulesOrder, 'utf8').catch(() => '');
  for (const line of order.split('\n')) {
    const ko = line.trim().replace(/^kernel\//, '');
    if (ko.endsWith('.ko')) koByName.set(path.basename(ko, '.ko').replace(/-/g, '_'), ko);
  }
  return (object) => {
    const command = index.objects.get(object)?.command ?? '';
    const name = /\s-DKBUILD_MODNAME=['"\\]*([A-Za-z0-9_]+)/.exec(command)?.[1];
    if (!/\s-DMODULE(\s|$)/.test(command) || name === undefined) return { kind: 'vmlinux' };
    return { kind: 'module', name, ko: koByName.get(name) ?? `${path.posix.dirname(object)}/${name}.ko` };
  };
}
