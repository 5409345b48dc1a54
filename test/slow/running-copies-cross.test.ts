import { createHash } from 'node:crypto';
import path from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import pLimit from 'p-limit';
import { readElfFile } from '../../src/elf/index.js';
import { firstMismatch, type RunningSymbols, runningSymbols } from '../../src/orchestrator/checks/running-match.js';
import { buildIndex } from '../../src/orchestrator/kbuild/build-index.js';
import { objectOwners } from '../../src/orchestrator/kbuild/object-owner.js';
import { ensureCompilerPlugin, pluginFlags } from '../../src/orchestrator/kbuild/compiler-plugin.js';
import { type KernelMachine, machineByName, machineCompiler, runningCflagsOf } from '../../src/orchestrator/kbuild/machine.js';
import { HostRunner } from '../../src/orchestrator/runners/runner.js';
import { recompileObject } from '../../src/orchestrator/views/recompile.js';
import { REPO_ROOT } from '../helpers/kernel.js';
import { type CrossMachine, crossKernel } from '../helpers/kernel-cross.js';

/**
 * The rule the running-kernel check rests on for machines whose livepatch
 * objects are compiled with flags of klpforge's own (machine.ts): an object
 * compiled as klpforge compiles it (-ffunction-sections -fdata-sections, the
 * livepatch flags, the plugin) plus the row's running flags has the running
 * vmlinux's function sizes exactly. Proven here on objects the integration
 * cases did not choose: a fixed pseudo-random sample of each cross fixture's
 * vmlinux C objects, compiled from their recorded commands by the pipeline's
 * own recompile; and every module object against its module's .ko. Without
 * the running flags the same sample must mismatch, so the test can fail.
 */
const SAMPLE = 100;
const TIMEOUT_MS = 60 * 60_000;

/** A stable sample: the objects whose name hashes lowest. */
function sample(objects: string[], n: number): string[] {
  const h = (s: string) => createHash('sha256').update(s).digest('hex');
  return [...objects].sort((a, b) => h(a).localeCompare(h(b))).slice(0, n);
}

describe.each<CrossMachine>(['s390x', 'ppc64le'])('%s: copies compiled with the running flags are the running kernel', (arch) => {
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  test(
    `every module object and a sample of ${SAMPLE} vmlinux objects: each function the running kernel's size with the running flags, and not all without`,
    async () => {
      const k = await crossKernel(arch);
      const machine: KernelMachine = machineByName(arch)!;
      const cc = machineCompiler(machine);
      const plugin = machine.compilerPlugin;
      const so = plugin
        ? await ensureCompilerPlugin({ plugin, cc, source: path.join(REPO_ROOT, 'gcc-plugins', `${plugin.name}.cc`), cacheDir: tmp.path })
        : undefined;
      const index = await buildIndex(k.plain);
      const ownerOf = await objectOwners(k.plain);
      const compiled = [...index.objects.values()].filter(
        (r) => r.source.endsWith('.c') && r.sourceInTree !== null && r.livepatch.livepatchable,
      );
      // Every module object (the fixture has few) and a sample of vmlinux's.
      const modules = compiled.filter((r) => ownerOf(r.object).kind === 'module').map((r) => r.object);
      const chosen = [
        ...sample(
          compiled.filter((r) => ownerOf(r.object).kind === 'vmlinux').map((r) => r.object),
          SAMPLE,
        ),
        ...modules,
      ];
      expect(chosen.length).toBeGreaterThan(SAMPLE);
      const vmlinux = runningSymbols(await readElfFile(k.vmlinux), 'vmlinux');
      const kos = new Map<string, RunningSymbols>();
      const runningOf = async (object: string): Promise<RunningSymbols> => {
        const owner = ownerOf(object);
        if (owner.kind === 'vmlinux') return vmlinux;
        let r = kos.get(owner.ko);
        if (r === undefined) kos.set(owner.ko, (r = runningSymbols(await readElfFile(path.join(k.plain, owner.ko)), owner.name)));
        return r;
      };
      // What kbuild gives each object when klpforge builds: KCFLAGS, then CFLAGS_KERNEL or CFLAGS_MODULE.
      const plug = so ? pluginFlags(so) : [];
      const klpforgeFlags = (object: string) => [
        '-ffunction-sections',
        '-fdata-sections',
        ...(ownerOf(object).kind === 'vmlinux' ? machine.livepatchCflags : machine.livepatchModuleCflags),
        ...plug,
      ];
      const runningFlags = (object: string) => {
        const f = runningCflagsOf(machine);
        return ownerOf(object).kind === 'vmlinux' ? f.vmlinux : f.module;
      };
      const limit = pLimit(2);
      const compileAll = (name: string, extra: (object: string) => readonly string[]) =>
        Promise.all(
          chosen.map((object) =>
            limit(async () => {
              const r = await recompileObject(index.objects.get(object)!, {
                buildDir: index.buildDir,
                recordedSourceDir: index.recordedSourceDir,
                viewRoot: index.recordedSourceDir,
                outDir: path.join(tmp.path, name),
                runner: new HostRunner(),
                extraFlags: extra(object),
              });
              const m = firstMismatch(await readElfFile(r.output), object, await runningOf(object));
              return m?.message;
            }),
          ),
        );
      const withRunning = (await compileAll('running', (o) => [...klpforgeFlags(o), ...runningFlags(o)])).filter(Boolean);
      expect(withRunning).toEqual([]);
      const without = (await compileAll('livepatch', klpforgeFlags)).filter(Boolean);
      expect(without.length).toBeGreaterThan(0);
      process.stderr.write(
        `${arch}: ${chosen.length} objects (${modules.length} of modules) match with the running flags; ${without.length} mismatch without them\n`,
      );
    },
    TIMEOUT_MS,
  );
});
