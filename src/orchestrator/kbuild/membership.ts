import path from 'node:path';
import pLimit from 'p-limit';
import type { Runner } from '../runners/runner.js';
import type { ObjectPath } from './build-index.js';

/**
 * Which objects a configured tree builds, asked of kbuild itself. A single
 * object target (`make fs/proc/cmdline.o`) compiles any .c file it is given,
 * configured or not, so without a full build the only sound answer to "is
 * this object part of the kernel?" is the directory's own Makefile, evaluated
 * by scripts/Makefile.build against include/config/auto.conf: its
 * real-obj-y/real-obj-m (composite objects expanded) and subdir-ym. One query
 * per directory, ~20 ms.
 */
export interface DirMembers {
  dir: string;
  /** Objects linked into vmlinux (paths relative to the build dir, normalised). */
  builtin: Set<ObjectPath>;
  /** Objects linked into modules. */
  modular: Set<ObjectPath>;
  /** Subdirectories kbuild descends into. */
  subdirs: Set<string>;
  /**
   * How kbuild spells the objects a Makefile builds from another directory
   * (kvm.ko's `arch/x86/kvm/../../../virt/kvm/kvm_main.o`): the make target
   * that compiles them with their module's flags. Keyed by the normalised path.
   */
  spelled: Map<ObjectPath, string>;
}

export interface MembershipOptions {
  buildDir: string;
  sourceDir: string;
  runner: Runner;
  /** make variables the tree was configured with (CC=…). */
  makeVars?: readonly string[];
}

const PRINT = 'klpforge-members: ; @printf "%s\\n" "y: $(real-obj-y)" "m: $(real-obj-m)" "d: $(subdir-ym)"';

export async function dirMembers(dir: string, o: MembershipOptions): Promise<DirMembers> {
  const argv = [
    'make',
    '-s',
    '--no-print-directory',
    '-f',
    path.join(o.sourceDir, 'scripts/Makefile.build'),
    `obj=${dir}`,
    `srctree=${o.sourceDir}`,
    'KBUILD_BUILTIN=1',
    'KBUILD_MODULES=1',
    ...(o.makeVars ?? []),
    `--eval=${PRINT}`,
    'klpforge-members',
  ];
  const r = await o.runner.run(argv, { cwd: o.buildDir });
  const spelled = new Map<ObjectPath, string>();
  const field = (k: string): string[] => {
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${k}: `));
    return (line ?? '')
      .slice(k.length + 2)
      .split(/\s+/)
      .filter((w) => w !== '')
      .map((w) => {
        const normal = path.posix.normalize(w);
        if (normal !== w) spelled.set(normal, w);
        return normal;
      });
  };
  // A directory without a Makefile (or one make cannot read) builds nothing.
  if (r.exitCode !== 0) return { dir, builtin: new Set(), modular: new Set(), subdirs: new Set(), spelled };
  return { dir, builtin: new Set(field('y')), modular: new Set(field('m')), subdirs: new Set(field('d')), spelled };
}

export type Membership = { object: ObjectPath; built: 'vmlinux' | 'module' } | { object: ObjectPath; built: false; why: string };

/**
 * Whether each object is built by this configuration: its directory must be
 * reached from its top-level directory through subdir-ym at every level and
 * list the object. Top-level directories are taken as reached (the top
 * Makefile's lists are not a Makefile.build directory); their own Makefiles
 * gate what they build.
 */
export async function objectMembership(objects: readonly ObjectPath[], o: MembershipOptions & { jobs?: number }): Promise<Membership[]> {
  const dirs = new Set<string>();
  for (const obj of objects) for (const d of ancestors(path.posix.dirname(obj))) dirs.add(d);
  const limit = pLimit(o.jobs ?? 2);
  const members = new Map<string, DirMembers>();
  await Promise.all(
    [...dirs].map((d) =>
      limit(async () => {
        members.set(d, await dirMembers(d, o));
      }),
    ),
  );
  return objects.map((object): Membership => {
    const chain = ancestors(path.posix.dirname(object));
    for (let i = 1; i < chain.length; i++) {
      if (!members.get(chain[i - 1]!)!.subdirs.has(chain[i]!))
        return { object, built: false, why: `${chain[i - 1]}/Makefile does not descend into ${chain[i]}/ with this config` };
    }
    const own = members.get(chain[chain.length - 1]!)!;
    if (own.builtin.has(object)) return { object, built: 'vmlinux' };
    if (own.modular.has(object)) return { object, built: 'module' };
    return { object, built: false, why: `${own.dir}/Makefile does not build ${path.posix.basename(object)} with this config` };
  });
}

/** `a/b/c` → [`a`, `a/b`, `a/b/c`]. */
function ancestors(dir: string): string[] {
  if (dir === '.' || dir === '') return [];
  const parts = dir.split('/');
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}
