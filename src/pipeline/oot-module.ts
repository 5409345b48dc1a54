import { cp, mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { diffObjects } from '../diff/index.js';
import { readElfFile } from '../elf/index.js';
import { generateModule } from '../klp/index.js';
import { type Runner } from '../orchestrator/index.js';
import { BuildError } from './errors.js';
import type { LivepatchBuildReport, ObjectReport } from './build.js';
import { type ProgressSink, StageClock } from './stages.js';

export interface OotBuildOptions {
  patches: readonly string[];
  /** The out-of-tree module's source directory (never written: it is copied). */
  ootSource: string;
  /** The running copy of the module (.ko): its name and symbol table. */
  ootModule: string;
  /** The kernel build the module is built against (the cached original). */
  kernelBuildDir: string;
  vmlinux: string;
  name: string;
  replace: boolean;
  outputDir: string;
  workDir: string;
  jobs: number;
  runner: Runner;
  extraIncludeDirs: readonly string[];
  entrySizes?: ReadonlyMap<string, number>;
  progress?: ProgressSink;
}

/** Build products a copied module source must not bring along: they would make kbuild skip the compile. */
const PRODUCT = /(\.o|\.ko|\.mod|\.mod\.c|\.cmd|\.a|\.order|\.symvers)$/;

/**
 * `--oot-module`: the module is built twice against the kernel build, from
 * private copies of its source (before and after the patches), with function
 * sections; every object of the module is diffed (such modules are small, so
 * no recompile-what-changed), and the generator targets the module by name.
 */
export async function buildOotLivepatch(o: OotBuildOptions): Promise<LivepatchBuildReport> {
  const clock = new StageClock(o.progress ?? (() => {}));
  const moduleName = path.basename(o.ootModule).replace(/\.ko$/, '').replace(/-/g, '_');
  const orig = path.join(o.workDir, 'oot', 'original');
  const patched = path.join(o.workDir, 'oot', 'patched');
  const copy = async (to: string) => {
    await mkdir(path.dirname(to), { recursive: true });
    await cp(o.ootSource, to, { recursive: true, filter: (src) => !PRODUCT.test(path.basename(src)) && path.basename(src) !== '.git' });
  };
  await Promise.all([copy(orig), copy(patched)]);
  for (const p of o.patches) {
    const args = ['-p1', '--forward', '--batch', '--reject-file=-', '--no-backup-if-mismatch', '-d', patched, '-i', path.resolve(p)];
    const dry = await execa('patch', ['--dry-run', ...args], { reject: false, all: true, stdin: 'ignore' });
    if (dry.exitCode !== 0)
      throw new BuildError('BUILD_INPUT', `${p} does not apply to ${o.ootSource} (--oot-module-src):\n${dry.all ?? ''}`.trimEnd(), 1);
    await execa('patch', args, { stdin: 'ignore' });
  }

  const make = async (dir: string) => {
    const kcflags = ['-ffunction-sections', '-fdata-sections', ...o.extraIncludeDirs.map((d) => `-I${d}`)].join(' ');
    const r = await o.runner.run(['make', '-C', o.kernelBuildDir, `M=${dir}`, `-j${o.jobs}`, `KCFLAGS=${kcflags}`, 'modules'], {
      cwd: o.kernelBuildDir,
    });
    if (r.exitCode !== 0) {
      const errors = `${r.stdout}\n${r.stderr}`
        .split('\n')
        .filter((l) => /error|Error/.test(l))
        .slice(0, 8)
        .join('\n');
      throw new BuildError(
        'BUILD_INPUT',
        `building the out-of-tree module in ${dir} failed (exit ${r.exitCode})${errors ? `:\n${errors}` : ''}`,
        1,
      );
    }
  };
  await clock.run(
    'original',
    () => make(orig),
    () => `out-of-tree module ${moduleName}`,
  );
  await clock.run(
    'patched',
    () => make(patched),
    () => `out-of-tree module ${moduleName}`,
  );

  const objects = await moduleObjects(patched, moduleName);
  const diffs = await clock.run('diff', () =>
    Promise.all(
      objects.map(async (object) => {
        const [a, b] = await Promise.all([readElfFile(path.join(orig, object)), readElfFile(path.join(patched, object))]);
        return { object, result: diffObjects(a, b, { output: true, ...(o.entrySizes ? { entrySizes: o.entrySizes } : {}) }) };
      }),
    ),
  );
  const reports: ObjectReport[] = diffs.map(({ object, result }) => ({
    object,
    owner: moduleName,
    outcome: result.outcome,
    changed: result.changed.map((f) => f.name),
    new: result.new.map((f) => f.name),
    lineOnly: result.lineOnly,
    leftOut: result.leftOut,
    warnings: result.warnings,
  }));
  const refused = diffs.flatMap(({ object, result }) => result.refusals.map((r) => ({ code: r.code, object, message: r.message })));
  if (refused.length > 0) throw new BuildError('BUILD_REFUSED', 'the patch changes things a livepatch cannot carry:', 2, refused);
  const changed = diffs.filter((d) => d.result.outcome === 'changed');
  if (changed.length === 0) throw new BuildError('BUILD_NO_CHANGE', `no function of ${moduleName} changed: nothing to livepatch`, 3);

  const generated = await clock.run(
    'generate',
    () =>
      generateModule({
        objects: changed.map((d) => ({
          object: d.object,
          owner: { kind: 'module', name: moduleName, ko: path.basename(o.ootModule) },
          output: d.result.output!,
        })),
        buildDir: o.kernelBuildDir,
        vmlinux: o.vmlinux,
        moduleFile: () => o.ootModule,
        name: o.name,
        replace: o.replace,
        workDir: path.join(o.workDir, 'generate'),
        outputDir: o.outputDir,
        jobs: o.jobs,
        runner: o.runner,
        ...(o.entrySizes ? { entrySizes: o.entrySizes } : {}),
      }),
    (g) => path.basename(g.ko),
  );
  return {
    module: generated.ko,
    objects: reports,
    functions: generated.objects,
    klpRelocations: generated.klpRelocations,
    warnings: [...reports.flatMap((x) => x.warnings.map((w) => `${x.object}: ${w}`)), ...generated.warnings],
    stages: clock.timings,
  };
}

/** The objects kbuild linked into the module (its NAME.mod), relative to the module's build dir. */
async function moduleObjects(dir: string, moduleName: string): Promise<string[]> {
  const mods = (await readdir(dir, { recursive: true })).filter((f) => String(f).endsWith('.mod')).map(String);
  const mod = mods.find((m) => path.basename(m, '.mod').replace(/-/g, '_') === moduleName);
  if (!mod) {
    throw new BuildError(
      'BUILD_INPUT',
      `the out-of-tree source builds ${mods.map((m) => path.basename(m, '.mod')).join(', ') || 'no module'}, not ${moduleName} (--oot-module): pass the .ko built from this source`,
      1,
    );
  }
  const text = await readFile(path.join(dir, mod), 'utf8');
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((p) => path.relative(dir, path.resolve(dir, p)));
}
