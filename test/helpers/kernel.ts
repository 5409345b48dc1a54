import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The checkout's root, whether this runs from test/ (jest) or from dist/test/ (compiled scripts). */
export const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.basename(dir) === 'dist' ? path.dirname(dir) : dir;
})();

/** Paths of the Linux 6.1 fixture kernel built by scripts/fetch-kernel. */
export interface FixtureKernel {
  key: string;
  sourceVersion: string;
  compiler: string;
  /** Unpacked linux-source-6.1 tree. */
  source: string;
  /** Plain (distro-like) build directory: vmlinux, bzImage, modules, Module.symvers. */
  plain: string;
  /** Build directory with -ffunction-sections -fdata-sections objects. */
  fsections: string;
  /**
   * Build directory with lockdep on (kernel-fixtures/lockdep-on.config on top),
   * only prepared: objects are compiled in it on demand, with the
   * function-sections build's KCFLAGS (see runCase in diff-fixtures.ts).
   */
  lockdep: string;
  vmlinux: string;
  bzImage: string;
  /** vmlinux.o of the function-sections build. */
  vmlinuxO: string;
  /** samples/livepatch/livepatch-sample.ko of the plain build. */
  samplePatch: string;
  /** usr/gen_init_cpio of the plain build. */
  genInitCpio: string;
}

let cached: FixtureKernel | undefined;

/**
 * The fixture kernel, which must already be built: the README's test command
 * (scripts/test) runs scripts/fetch-kernel before jest. Failing here, rather
 * than building, keeps a 7-minute build out of a test's timeout.
 */
export function fixtureKernel(): FixtureKernel {
  if (cached) return cached;
  try {
    const json = execFileSync(path.join(REPO_ROOT, 'scripts/fetch-kernel'), ['--check'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cached = JSON.parse(json) as FixtureKernel;
    return cached;
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? String(e);
    throw new Error(`fixture kernel not built: ${stderr.trim()}`);
  }
}
