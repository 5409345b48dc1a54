import { stat } from 'node:fs/promises';
import path from 'node:path';
import { OrchestratorError } from '../errors.js';

/**
 * Host directories a sandboxed build sees, each at the SAME absolute path as
 * on the host: kbuild's recorded command lines (and the paths baked into
 * objects) are absolute, so they must mean the same thing inside.
 */
export interface BindPaths {
  /** Seen, never written: the kernel source tree, a build dir used as reference. */
  readOnly: readonly string[];
  /** Written: the build and work dirs. */
  writable: readonly string[];
}

export interface Mount {
  path: string;
  writable: boolean;
}

/**
 * The mounts to make, in an order that works: a parent before anything under
 * it (a writable work dir inside a read-only cache dir is mounted after it).
 * A path given as both is writable. Paths must be absolute and not `/`.
 */
export function planMounts(binds: BindPaths): Mount[] {
  const byPath = new Map<string, boolean>();
  const add = (p: string, writable: boolean): void => {
    if (!path.isAbsolute(p)) {
      throw new OrchestratorError(
        'ORCH_RUNNER_OPTIONS',
        `${p}: a sandbox bind path must be absolute (it is mounted at the same path inside)`,
      );
    }
    const clean = path.normalize(p).replace(/(.)\/+$/, '$1');
    if (clean === '/') {
      throw new OrchestratorError(
        'ORCH_RUNNER_OPTIONS',
        `/: binding the host's whole root into the sandbox defeats it: bind the source, build and work dirs only`,
      );
    }
    byPath.set(clean, (byPath.get(clean) ?? false) || writable);
  };
  for (const p of binds.readOnly) add(p, false);
  for (const p of binds.writable) add(p, true);
  const depth = (p: string): number => p.split('/').length;
  return [...byPath]
    .map(([p, writable]) => ({ path: p, writable }))
    .sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Bind paths made absolute and checked to exist. They are kept as spelled,
 * not resolved through symlinks: the recorded commands name them as spelled,
 * and that is the path that must exist inside. A missing path is an error now
 * rather than an opaque one from bwrap or the engine later.
 */
export async function resolveBindPaths(binds: BindPaths): Promise<BindPaths> {
  const check = async (p: string): Promise<string> => {
    const abs = path.resolve(p);
    const s = await stat(abs).catch(() => undefined);
    if (!s) {
      throw new OrchestratorError(
        'ORCH_RUNNER_OPTIONS',
        `${p}: no such file or directory to bind into the sandbox: create it or fix the path`,
      );
    }
    return abs;
  };
  return {
    readOnly: await Promise.all(binds.readOnly.map(check)),
    writable: await Promise.all(binds.writable.map(check)),
  };
}
