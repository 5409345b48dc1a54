import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { HostRunner, type Runner, type RunOptions, type RunResult } from './runner.js';
import { planMounts, type BindPaths, type Mount } from './binds.js';
import { ROOTFS_BASE_ENV, sandboxEnv } from './sandbox-env.js';

/**
 * Runs build commands in a bubblewrap sandbox over a Debian rootfs (see
 * rootfs.ts): no network, the rootfs read-only, private /proc /dev /tmp, the
 * given host paths bound at their own absolute paths, read-only or writable.
 *
 * bwrap's new root is its own tmpfs. The rootfs is not bound at / as one piece:
 * a mount point for /home/u/linux would then have to be created inside the
 * read-only rootfs, which fails (or, bound writable, would litter the cached
 * rootfs). Instead its top-level entries are bound one by one into the tmpfs,
 * and a directory that a bind lands in (/root for /root/.cache/..., /home) is
 * rebuilt from its entries in the same way, recursively; then the tmpfs root
 * itself is made read-only. Nothing is ever written to the rootfs.
 */

export interface RootfsEntry {
  name: string;
  kind: 'dir' | 'symlink' | 'other';
  /** A symlink's target, as stored (Debian's /lib → usr/lib is relative, and stays so inside). */
  target?: string;
}

/** Entries of a directory of the rootfs, by its path inside the sandbox ('/' for the top). */
export type ListRootfsDir = (dirInSandbox: string) => readonly RootfsEntry[];

/** Mounts the sandbox makes for itself. */
export const OWN_MOUNTS: readonly string[] = ['/proc', '/dev', '/tmp'];

export interface BwrapConfig extends BindPaths {
  /** The rootfs directory on the host. */
  rootfs: string;
  /** The bwrap program. */
  bwrap?: string;
}

/** The rootfs laid out in the sandbox around `mountPoints` (see the file comment). */
export function rootfsLayoutArgs(rootfs: string, mountPoints: readonly string[], listDir: ListRootfsDir): string[] {
  const out: string[] = [];
  const isMountPoint = new Set(mountPoints);
  const hasMountUnder = (p: string): boolean => mountPoints.some((m) => m.startsWith(`${p}/`));
  const walk = (dir: string): void => {
    const entries = [...listDir(dir)].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      // Mounted over later; bwrap creates the mount point in its tmpfs.
      if (isMountPoint.has(p)) continue;
      if (hasMountUnder(p)) {
        out.push('--dir', p);
        // A symlink here is shadowed by a real directory: the host path is a directory, and must be one inside.
        if (e.kind === 'dir') walk(p);
      } else if (e.kind === 'symlink' && e.target !== undefined) {
        out.push('--symlink', e.target, p);
      } else {
        out.push('--ro-bind', path.join(rootfs, p), p);
      }
    }
  };
  walk('/');
  return out;
}

function mountArgs(m: Mount): string[] {
  return [m.writable ? '--bind' : '--ro-bind', m.path, m.path];
}

/**
 * The whole bwrap command line for one command. `env` is the complete
 * environment inside (the host's is cleared). Pure: the rootfs is read only
 * through `listDir`.
 */
export function bwrapArgv(
  config: BwrapConfig,
  argv: readonly string[],
  cwd: string,
  env: Readonly<Record<string, string>>,
  listDir: ListRootfsDir,
): string[] {
  const mounts = planMounts(config);
  return [
    config.bwrap ?? 'bwrap',
    ...rootfsLayoutArgs(config.rootfs, [...OWN_MOUNTS, ...mounts.map((m) => m.path)], listDir),
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--tmpfs',
    '/tmp',
    ...mounts.flatMap(mountArgs),
    // The root tmpfs holds only mount points and symlinks by now: nothing in it is for writing.
    '--remount-ro',
    '/',
    '--unshare-net',
    '--unshare-ipc',
    '--unshare-pid',
    '--unshare-uts',
    // Run as root, bwrap keeps every capability inside, enough to remount the binds writable.
    '--cap-drop',
    'ALL',
    // Ctrl-C or a crash of klpforge must not leave compilers running; no access to the caller's terminal.
    '--die-with-parent',
    '--new-session',
    '--clearenv',
    ...Object.entries(env).flatMap(([name, value]) => ['--setenv', name, value]),
    '--chdir',
    cwd,
    '--',
    ...argv,
  ];
}

/** Lists a rootfs directory on the host without following symlinks out of it. */
export function hostRootfsLister(rootfs: string): ListRootfsDir {
  const cache = new Map<string, RootfsEntry[]>();
  return (dir) => {
    let entries = cache.get(dir);
    if (!entries) {
      const hostDir = path.join(rootfs, dir);
      // A directory the rootfs does not have (/work) has no entries to lay out.
      const names = (() => {
        try {
          return readdirSync(hostDir);
        } catch {
          return [];
        }
      })();
      entries = names.map((name): RootfsEntry => {
        const p = path.join(hostDir, name);
        const st = lstatSync(p);
        if (st.isSymbolicLink()) return { name, kind: 'symlink', target: readlinkSync(p) };
        return { name, kind: st.isDirectory() ? 'dir' : 'other' };
      });
      cache.set(dir, entries);
    }
    return entries;
  };
}

export class BwrapRunner implements Runner {
  private readonly host = new HostRunner();
  private readonly listDir: ListRootfsDir;

  constructor(readonly config: BwrapConfig) {
    this.listDir = hostRootfsLister(config.rootfs);
  }

  /** The command line that run() executes (for --debug output). */
  argv(argv: readonly string[], options: RunOptions): string[] {
    return bwrapArgv(this.config, argv, options.cwd, { ...ROOTFS_BASE_ENV, ...sandboxEnv(options.env) }, this.listDir);
  }

  /** bwrap passes the command's exit status through, a signal death as 128 + N, as HostRunner reports it. */
  run(argv: readonly string[], options: RunOptions): Promise<RunResult> {
    if (argv.length === 0) throw new Error('BwrapRunner.run: empty argv');
    // cwd matters only inside; the host side runs from / so a cwd missing on the host is bwrap's error, not a spawn failure.
    return this.host.run(this.argv(argv, options), { cwd: '/' });
  }

  seeing(readOnly: readonly string[]): BwrapRunner {
    return new BwrapRunner({ ...this.config, readOnly: [...this.config.readOnly, ...readOnly.map((p) => path.resolve(p))] });
  }
}
