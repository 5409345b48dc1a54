import path from 'node:path';
import pLimit from 'p-limit';
import type { BuildIndex } from '../orchestrator/kbuild/build-index.js';
import type { Runner } from '../orchestrator/runners/runner.js';
import { recompileObject } from '../orchestrator/views/recompile.js';
import type { ObjectPair } from '../orchestrator/views/patched-objects.js';
import type { RunningCflags } from '../orchestrator/kbuild/machine.js';
import type { ObjectOwner } from '../orchestrator/kbuild/object-owner.js';

export interface RunningCopyOptions {
  index: BuildIndex;
  /** Flags that give the kernel's own code generation back (machine.ts runningCflagsOf), by what an object is linked into. */
  flags: RunningCflags;
  ownerOf: (object: string) => ObjectOwner;
  /** Copies are written to OUT/<object path>. */
  outDir: string;
  runner: Runner;
  jobs: number;
}

/**
 * Where the original objects are compiled with flags the running kernel was
 * not (s390x: data through the GOT), their sizes say nothing about whether
 * they are the running kernel's. The match is made on a copy of each,
 * compiled from the unpatched tree with its recorded command and the flags
 * that undo the difference, which gives the running kernel's code again.
 * Returns object path → the copy to check.
 */
export async function runningCopies(pairs: readonly ObjectPair[], o: RunningCopyOptions): Promise<Map<string, string>> {
  const limit = pLimit(o.jobs);
  const copies = await Promise.all(
    pairs.map((pair) =>
      limit(async () => {
        const record = o.index.objects.get(pair.object);
        const flags = o.ownerOf(pair.object).kind === 'vmlinux' ? o.flags.vmlinux : o.flags.module;
        if (record === undefined || flags.length === 0) return [pair.object, pair.original] as const;
        const r = await recompileObject(record, {
          buildDir: o.index.buildDir,
          recordedSourceDir: o.index.recordedSourceDir,
          viewRoot: o.index.recordedSourceDir,
          outDir: path.resolve(o.outDir),
          runner: o.runner,
          extraFlags: flags,
          purpose: {
            what: `compiling the unpatched object the running kernel's way for the running-kernel check (its recorded command + ${flags.join(' ')})`,
            remedy: "the kernel's own command with these flags should always compile: report it with the lines below",
          },
        });
        return [pair.object, r.output] as const;
      }),
    ),
  );
  return new Map(copies);
}
