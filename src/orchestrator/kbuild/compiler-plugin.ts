import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { SetupError } from '../setup-errors.js';

const run = promisify(execFile);

/**
 * A gcc plugin a machine's livepatch objects are compiled with (machine.ts
 * `compilerPlugin`). A plugin is a host shared object built against the
 * headers of the very gcc that loads it, so it is built here, once per
 * compiler and plugin source, into the cache.
 */
export interface CompilerPlugin {
  /** gcc's name for it (the .so's base name): `-fplugin-arg-NAME-KEY` addresses it, so no `-` in it. */
  readonly name: string;
  /** Arguments that make it do nothing: the running-kernel copies are compiled with these. */
  readonly offArgs: readonly string[];
}

export interface PluginBuild {
  plugin: CompilerPlugin;
  /** The plugin's C++ source (gcc-plugins/NAME.cc in the checkout). */
  source: string;
  /** The gcc that will load it (`powerpc64le-linux-gnu-gcc`). */
  cc: string;
  cacheDir: string;
}

/** Builds the plugin for `cc` if the cache lacks it; returns the path of the .so for -fplugin=. */
export async function ensureCompilerPlugin(b: PluginBuild): Promise<string> {
  const { plugin, cc } = b;
  let headers = 'the plugin headers of that gcc';
  const fail = (what: string): never => {
    throw new SetupError('COMPILER_PLUGIN_FAILED', `gcc plugin ${plugin.name} for ${cc}: ${what}; install g++ and ${headers}`);
  };
  const [source, version, pluginDir] = await Promise.all([
    readFile(b.source).catch(() => fail(`its source ${b.source} is missing`)),
    run(cc, ['-dumpfullversion']).then(
      (r) => r.stdout.trim(),
      () => fail(`${cc} does not run`),
    ),
    run(cc, ['-print-file-name=plugin']).then(
      (r) => r.stdout.trim(),
      () => fail(`${cc} does not run`),
    ),
  ]);
  headers = headersPackage(cc, version);
  const key = createHash('sha256').update(source).update(`\0${cc}\0${version}\0${pluginDir}`).digest('hex').slice(0, 16);
  const dir = path.join(b.cacheDir, 'gcc-plugins', `${plugin.name}-${key}`);
  const so = path.join(dir, `${plugin.name}.so`);
  if (
    await stat(so).then(
      () => true,
      () => false,
    )
  )
    return so;

  const header = path.join(pluginDir, 'include', 'gcc-plugin.h');
  if (
    !(await stat(header).then(
      () => true,
      () => false,
    ))
  )
    fail(`no plugin headers (${header})`);
  await mkdir(dir, { recursive: true });
  const partial = `${so}.${process.pid}.tmp`;
  try {
    await run('g++', ['-shared', '-fPIC', '-fno-rtti', '-O2', '-I', path.join(pluginDir, 'include'), '-o', partial, b.source]);
  } catch (e) {
    await rm(partial, { force: true });
    const stderr = (e as { stderr?: string }).stderr?.trim().split('\n')[0];
    fail(`g++ failed${stderr ? `: ${stderr}` : ''}`);
  }
  // Whole or not at all: a concurrent build of the same key renames an identical file.
  await rename(partial, so);
  return so;
}

/** Debian's package of a gcc's plugin headers: gcc-12-plugin-dev, or gcc-12-plugin-dev-TRIPLET for a cross gcc. */
export function headersPackage(cc: string, version: string): string {
  const major = version.split('.')[0];
  const triplet = /^(.+)-gcc(?:-\d+)?$/.exec(path.basename(cc))?.[1];
  return `gcc-${major}-plugin-dev${triplet ? `-${triplet}` : ''}`;
}

/** The compiler flags that load the plugin. */
export function pluginFlags(so: string): string[] {
  return [`-fplugin=${so}`];
}

/** The flags that keep a loaded plugin from changing anything (appended after the recorded command). */
export function pluginOffFlags(p: CompilerPlugin): string[] {
  return p.offArgs.map((a) => `-fplugin-arg-${p.name}-${a}`);
}
