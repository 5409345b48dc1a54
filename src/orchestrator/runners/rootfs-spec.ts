import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { pickDebianArchive, readAptSources } from './apt-sources.js';
import { OrchestratorError } from '../errors.js';

/**
 * What the bwrap runner's rootfs is made of: a Debian release, where to fetch
 * it, and the packages a kernel build runs. The compiler and assembler are
 * pinned to the host's versions, because an object compiled in the sandbox must
 * be the object the host would compile (and what built the running kernel).
 */

/** `name` or `name=version`: a pinned version is checked after debootstrap, which cannot pin. */
export type PackageSpec = string;

export interface RootfsSpec {
  suite: string;
  mirror: string;
  components: readonly string[];
  /** Keyring that verifies the archive (the apt source's Signed-By); debootstrap's default otherwise. */
  keyring?: string;
  packages: readonly PackageSpec[];
}

/**
 * What a kernel build and kbuild's recorded commands run besides gcc: make
 * and the script interpreters, the parser generators and bc of the build's
 * own steps, libelf for objtool (built on the host, linked against it), libssl
 * for sign-file, kmod/cpio/xz for modules and the initramfs.
 */
export const KERNEL_BUILD_PACKAGES: readonly PackageSpec[] = [
  'make',
  'bc',
  'bison',
  'flex',
  'libelf-dev',
  'libssl-dev',
  'python3',
  'perl',
  'patch',
  'kmod',
  'cpio',
  'xz-utils',
  'libc6-dev',
];

/** Bumped when the way a rootfs is made changes, so old cache entries stop matching. */
export const ROOTFS_RECIPE = 1;

export function packageName(p: PackageSpec): string {
  const eq = p.indexOf('=');
  return eq < 0 ? p : p.slice(0, eq);
}

export function pinnedVersion(p: PackageSpec): string | undefined {
  const eq = p.indexOf('=');
  return eq < 0 ? undefined : p.slice(eq + 1);
}

/** The cache key of a rootfs: everything that changes what debootstrap produces. */
export function rootfsKey(spec: RootfsSpec): string {
  const canonical = JSON.stringify({
    recipe: ROOTFS_RECIPE,
    suite: spec.suite,
    mirror: spec.mirror.replace(/\/+$/, ''),
    components: [...spec.components].sort(),
    packages: [...spec.packages].sort(),
  });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** `<suite>-<key>`: the cache entry's directory name. */
export function rootfsName(spec: RootfsSpec): string {
  return `${spec.suite}-${rootfsKey(spec)}`;
}

/** `$KLPFORGE_CACHE/rootfs`, else `~/.cache/klpforge/rootfs` (where scripts/fetch-kernel caches kernels too). */
export function defaultRootfsCacheDir(): string {
  return path.join(process.env['KLPFORGE_CACHE'] || path.join(homedir(), '.cache/klpforge'), 'rootfs');
}

async function hostPackageVersion(name: string): Promise<string | undefined> {
  const r = await execa('dpkg-query', ['-W', '-f=${db:Status-Abbrev}${Version}', name], { reject: false });
  return r.exitCode === 0 && r.stdout.startsWith('ii ') ? r.stdout.slice(3).trim() : undefined;
}

/**
 * The host's compiler packages, pinned: `gcc-N=VERSION` for the gcc `gcc`
 * runs (plus `gcc`, which provides that name) and `binutils=VERSION`. On a
 * host without dpkg or gcc they stay unpinned: whatever the suite has.
 */
export async function hostToolchainPackages(): Promise<PackageSpec[]> {
  const dump = await execa('gcc', ['-dumpversion'], { reject: false });
  const major = dump.exitCode === 0 ? /^\d+/.exec(dump.stdout.trim())?.[0] : undefined;
  const gccPackage = major ? `gcc-${major}` : undefined;
  const [gccVersion, binutilsVersion] = await Promise.all([
    gccPackage ? hostPackageVersion(gccPackage) : undefined,
    hostPackageVersion('binutils'),
  ]);
  const out: PackageSpec[] = ['gcc'];
  if (gccPackage) out.push(gccVersion ? `${gccPackage}=${gccVersion}` : gccPackage);
  out.push(binutilsVersion ? `binutils=${binutilsVersion}` : 'binutils');
  return out;
}

/**
 * The default spec: the Debian release the machine's apt sources name, the
 * host's toolchain, and KERNEL_BUILD_PACKAGES. Fields given in `overrides` win.
 */
export async function defaultRootfsSpec(overrides: Partial<RootfsSpec> = {}, aptRoot = '/etc/apt'): Promise<RootfsSpec> {
  let archive: Partial<RootfsSpec> = {};
  if (!overrides.suite || !overrides.mirror) {
    const picked = pickDebianArchive(await readAptSources(aptRoot));
    if (!picked) {
      throw new OrchestratorError(
        'ORCH_ROOTFS_FAILED',
        `${aptRoot}: no Debian release source (deb URI SUITE main) in sources.list or sources.list.d: add one, or pass the rootfs directory to use`,
      );
    }
    archive = {
      suite: picked.suite,
      mirror: picked.mirror,
      components: picked.components,
      ...(picked.keyring ? { keyring: picked.keyring } : {}),
    };
  }
  const packages = overrides.packages ?? [...(await hostToolchainPackages()), ...KERNEL_BUILD_PACKAGES];
  return { components: ['main'], ...archive, ...overrides, packages } as RootfsSpec;
}
