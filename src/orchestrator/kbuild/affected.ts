import type { BuildIndex, ObjectPath, SourcePath } from './build-index.js';
import { notLivepatchableDirectory, type NotLivepatchableReason } from './livepatchable.js';

export interface AffectedObject {
  object: ObjectPath;
  /** The touched files that make this object change (its source, or files it includes). */
  because: SourcePath[];
}

export interface NotLivepatchableObject extends AffectedObject {
  reason: NotLivepatchableReason;
}

export interface AffectedObjects {
  /** Objects to recompile and diff, sorted by path. */
  rebuild: AffectedObject[];
  /**
   * Objects the patch changes but a livepatch cannot carry (assembly, vdso, boot code, ...), sorted.
   * A touched file no object of this build compiles, in a directory a livepatch never reaches
   * (arch/x86/boot/, vdso/, realmode/, purgatory/), is listed here under its own source path:
   * the original is `make vmlinux modules`, which does not build the boot code, and calling such
   * a file "outside" would suggest the change does not matter to the running kernel.
   */
  notLivepatchable: NotLivepatchableObject[];
  /**
   * Touched files no object of this build compiles or reads: documentation,
   * other architectures, code not configured in, and files the patch creates.
   */
  outside: SourcePath[];
  /**
   * Touched files that steer the build rather than being compiled (Makefile,
   * Kbuild, Kconfig, syscall tables, linker scripts): recorded commands
   * cannot show their effect, so no object is listed for them. Kept apart
   * from `outside` so the caller does not report them as harmless.
   */
  buildInputs: SourcePath[];
}

const BUILD_INPUT = /(^|\/)(Makefile[^/]*|Kbuild[^/]*|Kconfig[^/]*)$|\.(tbl|lds|lds\.S)$/;

/** Whether a file no object compiles still changes the build (see AffectedObjects.buildInputs). */
export function isBuildInput(file: SourcePath): boolean {
  return BUILD_INPUT.test(file);
}

/**
 * The objects a set of touched source files reaches: a compiled file reaches
 * its objects, any other file (header, #included .c) reaches every object
 * whose recorded dependencies list it. Lookups only: no scan over objects.
 */
export function affectedObjects(index: BuildIndex, touched: readonly SourcePath[]): AffectedObjects {
  const because = new Map<ObjectPath, SourcePath[]>();
  const outside: SourcePath[] = [];
  const buildInputs: SourcePath[] = [];
  const unreachable: NotLivepatchableObject[] = [];
  for (const file of new Set(touched)) {
    const objects = [...(index.bySource.get(file) ?? []), ...(index.byDependency.get(file) ?? [])];
    if (objects.length === 0) {
      const reason = notLivepatchableDirectory(file);
      if (reason !== undefined && !isBuildInput(file)) unreachable.push({ object: file, because: [file], reason });
      else (isBuildInput(file) ? buildInputs : outside).push(file);
      continue;
    }
    for (const object of objects) {
      const list = because.get(object);
      if (list === undefined) because.set(object, [file]);
      else if (!list.includes(file)) list.push(file);
    }
  }

  const rebuild: AffectedObject[] = [];
  const notLivepatchable: NotLivepatchableObject[] = [];
  for (const object of [...because.keys()].sort()) {
    const entry = { object, because: because.get(object)! };
    const lp = index.objects.get(object)!.livepatch;
    if (lp.livepatchable) rebuild.push(entry);
    else notLivepatchable.push({ ...entry, reason: lp.reason });
  }
  notLivepatchable.push(...unreachable);
  notLivepatchable.sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : 0));
  return { rebuild, notLivepatchable, outside: outside.sort(), buildInputs: buildInputs.sort() };
}
