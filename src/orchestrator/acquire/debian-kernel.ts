import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { acquireLock } from '../original/cache-lock.js';
import { writeFileAtomic } from '../original/cache-entries.js';
import { SetupError } from '../setup-errors.js';
import { type AptPackage, aptNames, aptPackage, downloadPackage, installedVersion } from './apt.js';
import { ensureFreeSpace, extractAll, extractMember, unpackSourceTree } from './unpack.js';

/**
 * A released Debian kernel, as klpforge needs it: the exact source, the
 * config, the running kernel's symbols and what external modules link
 * against, all from the archive's packages for that release.
 *
 *   CACHE/debian/downloads/*.deb          what apt-get download fetched (the -dbg one is deleted once used)
 *   CACHE/debian/RELEASE/image/           linux-image-RELEASE unpacked: boot/vmlinuz-*, lib/modules/RELEASE
 *   CACHE/debian/RELEASE/vmlinux          the -dbg vmlinux without its DWARF (70 MB of 633): symbols, sections
 *   CACHE/debian/RELEASE/Module.symvers   from linux-headers-RELEASE: exports and their CRCs (MODVERSIONS)
 *   CACHE/debian/RELEASE/config           boot/config-RELEASE with Debian's certificate paths cleared
 *   CACHE/debian/RELEASE/gen_init_cpio    the source's usr/gen_init_cpio.c compiled (verify's initramfs packer)
 *   CACHE/src/linux-source-X.Y_VERSION/   the source, unpacked once (scripts/fetch-kernel shares it)
 *   CACHE/debian/RELEASE/kernel.json      written last: the release is complete
 */
export interface DebianKernel {
  /** `6.1.0-57-amd64`: uname -r of the running kernel. */
  release: string;
  /** The Debian package version all its packages share: `6.1.192-3`. */
  version: string;
  /** The image package used (`linux-image-6.1.0-57-amd64`, or its `-unsigned` build). */
  imagePackage: string;
  sourceDir: string;
  config: string;
  vmlinux: string;
  vmlinuz: string;
  /** lib/modules/RELEASE/kernel: module paths below it are the build's own (fs/binfmt_misc.ko). */
  modulesDir: string;
  symvers: string;
  /** The compiler the config names (CONFIG_CC_VERSION_TEXT's first word: `gcc-12`). */
  cc: string;
  /** usr/gen_init_cpio of the release's source, compiled: what `verify` packs an initramfs with. */
  genInitCpio: string;
}

export interface AcquireTimings {
  download: number;
  unpack: number;
}

const RELEASE = /^(\d+)\.(\d+)\.\d+-\d+(?:-[a-z0-9]+)+$/;
/** Bump when the layout above changes meaning: releases acquired before are acquired again. */
const LAYOUT = 2;

/** `debian:RELEASE` → RELEASE, or undefined for anything else (a bzImage path). */
export function parseDebianKernel(spec: string): string | undefined {
  if (!spec.startsWith('debian:')) return undefined;
  const release = spec.slice('debian:'.length);
  if (!RELEASE.test(release)) {
    throw new SetupError(
      'KERNEL_UNKNOWN',
      `${spec}: not a Debian kernel release; write debian:RELEASE with the image's uname -r, e.g. debian:6.1.0-57-amd64`,
    );
  }
  return release;
}

/** The release's directory, whether or not acquired yet. */
export const debianKernelDir = (cacheDir: string, release: string): string => path.join(cacheDir, 'debian', release);

/**
 * The release from the cache, acquired first if needed (under a lock, so
 * concurrent builds for one release download it once). Every package is
 * looked up before anything is downloaded, so a missing one is said at once.
 */
export async function ensureDebianKernel(
  release: string,
  cacheDir: string,
  onProgress: (line: string) => void = () => {},
): Promise<{ kernel: DebianKernel; timings?: AcquireTimings }> {
  const dir = debianKernelDir(cacheDir, release);
  const ready = await readStamp(dir);
  if (ready) return { kernel: ready };
  await mkdir(path.join(cacheDir, 'locks'), { recursive: true });
  const lock = await acquireLock(path.join(cacheDir, 'locks', `debian-${release}.lock`), {
    onWait: (h) => onProgress(`waiting for process ${h.pid}, which is fetching Debian kernel ${release}`),
  });
  try {
    const again = await readStamp(dir);
    if (again) return { kernel: again };
    return await acquire(release, cacheDir, dir, onProgress);
  } finally {
    await lock.release();
  }
}

async function acquire(
  release: string,
  cacheDir: string,
  dir: string,
  onProgress: (line: string) => void,
): Promise<{ kernel: DebianKernel; timings: AcquireTimings }> {
  const [, major, minor] = RELEASE.exec(release)!;
  const packages = await resolvePackages(release, `linux-source-${major}.${minor}`);
  const sourceDir = sourceDirOf(cacheDir, packages.source.name, packages.version);
  const haveSource = await exists(path.join(sourceDir, '.klpforge-unpacked'));
  const downloads = path.join(cacheDir, 'debian', 'downloads');
  const needed = [packages.image, packages.dbg, packages.headers];

  // Downloads, the image unpacked, the full vmlinux while it is stripped, the source tree.
  const vmlinuxFull = 700 * 2 ** 20;
  await ensureFreeSpace(
    cacheDir,
    needed.reduce((n, p) => n + p.size, 0) + packages.image.installedSize + vmlinuxFull + (haveSource ? 0 : 1.6 * 2 ** 30),
    `Debian kernel ${release} (packages, image, symbols${haveSource ? '' : ', source'})`,
  );

  const t0 = Date.now();
  await mkdir(downloads, { recursive: true });
  onProgress(`downloading ${[...needed, ...(haveSource ? [] : [packages.source])].map((p) => p.name).join(', ')} ${packages.version}`);
  const debs = new Map<string, string>();
  for (const p of needed) debs.set(p.name, (await downloadPackage(p, downloads)).file);
  const t1 = Date.now();

  onProgress(`unpacking Debian kernel ${release}`);
  await mkdir(dir, { recursive: true });
  const full = path.join(dir, 'vmlinux.debug');
  await Promise.all([
    extractAll(debs.get(packages.image.name)!, path.join(dir, 'image')),
    extractMember(debs.get(packages.dbg.name)!, `./usr/lib/debug/boot/vmlinux-${release}`, full).then(async () => {
      await stripDebug(full, path.join(dir, 'vmlinux'));
      await rm(full, { force: true });
      await rm(debs.get(packages.dbg.name)!, { force: true }); // 858 MB whose one use is done
    }),
    extractMember(debs.get(packages.headers.name)!, `./usr/src/linux-headers-${release}/Module.symvers`, path.join(dir, 'Module.symvers')),
    ensureDebianSource(packages.source.name, packages.version, cacheDir),
  ]);
  const configText = await readFile(path.join(dir, 'image', 'boot', `config-${release}`), 'utf8').catch(() => {
    throw new SetupError(
      'KERNEL_UNPACK_FAILED',
      `${packages.imagePackage} ${packages.version} has no boot/config-${release}: not a kernel image package`,
    );
  });
  await writeFile(path.join(dir, 'config'), buildableConfig(configText));
  const genInitCpio = path.join(dir, 'gen_init_cpio');
  const cc = await execa('gcc', ['-O2', '-o', genInitCpio, path.join(sourceDir, 'usr', 'gen_init_cpio.c')], {
    reject: false,
    stdin: 'ignore',
  });
  if (cc.exitCode !== 0)
    throw new SetupError(
      'KERNEL_UNPACK_FAILED',
      `${sourceDir}/usr/gen_init_cpio.c did not compile (${cc.stderr.trim().split('\n').pop()}): is gcc installed?`,
    );
  const t2 = Date.now();

  const kernel: DebianKernel = {
    release,
    version: packages.version,
    imagePackage: packages.imagePackage,
    sourceDir,
    config: path.join(dir, 'config'),
    vmlinux: path.join(dir, 'vmlinux'),
    vmlinuz: path.join(dir, 'image', 'boot', `vmlinuz-${release}`),
    modulesDir: path.join(dir, 'image', 'lib', 'modules', release, 'kernel'),
    symvers: path.join(dir, 'Module.symvers'),
    cc: configCompiler(configText),
    genInitCpio,
  };
  await writeFileAtomic(path.join(dir, 'kernel.json'), JSON.stringify({ layout: LAYOUT, ...kernel }, null, 2));
  return { kernel, timings: { download: t1 - t0, unpack: t2 - t1 } };
}

const sourceDirOf = (cacheDir: string, name: string, version: string): string => path.join(cacheDir, 'src', `${name}_${version}`);

async function installedTarballOf(name: string, version: string): Promise<string | undefined> {
  return (await installedVersion(name)) === version ? `/usr/src/${name}.tar.xz` : undefined;
}

async function unpackSource(from: Parameters<typeof unpackSourceTree>[0], dir: string): Promise<void> {
  await unpackSourceTree(from, dir);
  await writeFile(path.join(dir, '.klpforge-unpacked'), '');
}

/**
 * A Debian kernel source tree of one version (`linux-source-6.1`, `6.1.192-2`),
 * unpacked once into CACHE/src: from the installed package when it is that
 * version, else downloaded. For building against another release's source.
 */
export async function ensureDebianSource(name: string, version: string, cacheDir: string): Promise<string> {
  const dir = sourceDirOf(cacheDir, name, version);
  if (await exists(path.join(dir, '.klpforge-unpacked'))) return dir;
  const p = await aptPackage(name, version);
  if (p === undefined)
    throw new SetupError(
      'KERNEL_PACKAGE_MISSING',
      `${name} ${version} is not in the archive apt knows: run apt-get update, or pick a version apt-cache madison ${name} lists`,
    );
  await mkdir(path.join(cacheDir, 'locks'), { recursive: true });
  const lock = await acquireLock(path.join(cacheDir, 'locks', `source-${name}_${version}.lock`));
  try {
    if (await exists(path.join(dir, '.klpforge-unpacked'))) return dir;
    await ensureFreeSpace(cacheDir, p.size + 1.6 * 2 ** 30, `${name} ${version}`);
    const tarball = await installedTarballOf(name, version);
    const downloads = path.join(cacheDir, 'debian', 'downloads');
    await mkdir(downloads, { recursive: true });
    await unpackSource(
      tarball ? { tarball } : { deb: (await downloadPackage(p, downloads)).file, member: `./usr/src/${name}.tar.xz` },
      dir,
    );
    return dir;
  } finally {
    await lock.release();
  }
}

interface ReleasePackages {
  version: string;
  imagePackage: string;
  image: AptPackage;
  dbg: AptPackage;
  headers: AptPackage;
  source: AptPackage;
}

/**
 * Every package of the release at the image's version. A release is signed
 * (linux-image-R) once Debian has signed it; until then only its -unsigned
 * build is in the archive, with the same kernel.
 */
async function resolvePackages(release: string, sourceName: string): Promise<ReleasePackages> {
  const image = (await aptPackage(`linux-image-${release}`)) ?? (await aptPackage(`linux-image-${release}-unsigned`));
  if (image === undefined) {
    const known = (await aptNames('linux-image-'))
      .map((n) => n.slice('linux-image-'.length).replace(/-unsigned$/, ''))
      .filter((r) => RELEASE.test(r) && r.replace(/^[\d.]+-\d+/, '') === release.replace(/^[\d.]+-\d+/, ''));
    const newest = [...new Set(known)].sort(byAbi).slice(-3).reverse();
    throw new SetupError(
      'KERNEL_UNKNOWN',
      `debian:${release}: the Debian archive apt knows has no linux-image-${release}` +
        (newest.length > 0 ? `; newest it has: ${newest.join(', ')}` : '') +
        ' (run apt-get update if the list is old)',
    );
  }
  const at = async (name: string, why: string): Promise<AptPackage> => {
    const p = await aptPackage(name, image.version);
    if (p === undefined) {
      throw new SetupError(
        'KERNEL_PACKAGE_MISSING',
        `debian:${release}: ${name} ${image.version} is not in the archive apt knows, and ${why}: ` +
          'pick a release the archive keeps whole, or pass -s/-c/-v for a kernel you have the files of',
      );
    }
    return p;
  };
  const [dbg, headers, source] = [
    await at(`linux-image-${release}-dbg`, 'only it has the symbol table livepatch relocations are resolved against'),
    await at(`linux-headers-${release}`, 'its Module.symvers has the symbol versions the module must carry'),
    await at(sourceName, 'the objects must be compiled from the exact source'),
  ];
  return { version: image.version, imagePackage: image.name, image, dbg, headers, source };
}

/** Newest last: 6.1.0-9 before 6.1.0-57. */
function byAbi(a: string, b: string): number {
  const n = (r: string): number[] => r.split(/[.-]/).slice(0, 4).map(Number);
  const [x, y] = [n(a), n(b)];
  for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/** The newest release of a flavour (`amd64`, `cloud-amd64`) the archive apt knows has an image for. */
export async function newestDebianRelease(series: string, flavour: string): Promise<string | undefined> {
  const releases = (await aptNames(`linux-image-${series}.0-`))
    .map((n) => n.slice('linux-image-'.length).replace(/-unsigned$/, ''))
    .filter((r) => RELEASE.test(r) && r.replace(/^[\d.]+-\d+-/, '') === flavour);
  return [...new Set(releases)].sort(byAbi).pop();
}

/**
 * Debian's config as a buildable one: it names certificate files
 * (debian/certs/…) that only Debian's build has, and a build salt that only
 * goes into notes. Code generation does not depend on them.
 */
export function buildableConfig(text: string): string {
  const cleared = ['CONFIG_SYSTEM_TRUSTED_KEYS', 'CONFIG_SYSTEM_REVOCATION_KEYS', 'CONFIG_BUILD_SALT'];
  let out = text;
  for (const name of cleared) out = out.replace(new RegExp(`^${name}=.*$`, 'm'), `${name}=""`);
  return out;
}

/** `gcc-12` from CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0": kbuild must run that compiler. */
export function configCompiler(text: string): string {
  const m = /^CONFIG_CC_VERSION_TEXT="([^" ]+)/m.exec(text);
  return m?.[1] ?? 'gcc';
}

/** The -dbg vmlinux without DWARF and relocations: every section, header and symbol the checks and klp relocations read. */
async function stripDebug(from: string, to: string): Promise<void> {
  const r = await execa('objcopy', ['--strip-debug', '--remove-relocations=*', from, `${to}.part`], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0)
    throw new SetupError('KERNEL_UNPACK_FAILED', `${from}: objcopy --strip-debug failed (${r.stderr.trim().split('\n').pop()})`);
  await rename(`${to}.part`, to);
}

async function readStamp(dir: string): Promise<DebianKernel | undefined> {
  const text = await readFile(path.join(dir, 'kernel.json'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const { layout, ...kernel } = JSON.parse(text) as DebianKernel & { layout: number };
  return layout === LAYOUT && (await exists(kernel.vmlinux)) && (await exists(path.join(kernel.sourceDir, '.klpforge-unpacked')))
    ? kernel
    : undefined;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
