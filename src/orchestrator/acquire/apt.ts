import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { SetupError } from '../setup-errors.js';

/**
 * What klpforge asks of apt: which version of a package the archive has, and
 * the .deb itself. apt-cache answers from the local lists (no network);
 * apt-get download is the only step that needs the archive.
 */
export interface AptPackage {
  name: string;
  version: string;
  /** Bytes of the .deb. */
  size: number;
  /** Installed-Size, in bytes. */
  installedSize: number;
  depends: string[];
}

/** `apt-cache show NAME[=VERSION]`: the newest (or the given) version, or undefined if the archive has none. */
export async function aptPackage(name: string, version?: string): Promise<AptPackage | undefined> {
  const r = await execa('apt-cache', ['show', '--no-all-versions', version ? `${name}=${version}` : name], {
    reject: false,
    stdin: 'ignore',
  });
  if (r.exitCode !== 0 || !/^Package:/m.test(r.stdout)) return undefined;
  const field = (f: string): string | undefined => new RegExp(`^${f}: (.*)$`, 'm').exec(r.stdout)?.[1];
  return {
    name,
    version: field('Version')!,
    size: Number(field('Size') ?? 0),
    installedSize: Number(field('Installed-Size') ?? 0) * 1024,
    depends: (field('Depends') ?? '')
      .split(',')
      .map((d) => d.trim().split(/\s/, 1)[0]!)
      .filter((d) => d !== ''),
  };
}

/** Package names starting with `prefix` that apt knows (apt-cache pkgnames, local lists). */
export async function aptNames(prefix: string): Promise<string[]> {
  const r = await execa('apt-cache', ['pkgnames', prefix], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 ? r.stdout.split('\n').filter((n) => n !== '') : [];
}

/** The installed version of a package, if installed. */
export async function installedVersion(name: string): Promise<string | undefined> {
  const r = await execa('dpkg-query', ['-W', '-f=${Status}\t${Version}', name], { reject: false, stdin: 'ignore' });
  const [status, version] = r.stdout.split('\t');
  return r.exitCode === 0 && status?.endsWith(' installed') ? version : undefined;
}

/**
 * The .deb of NAME=VERSION in `dir`, downloaded unless already there. apt
 * writes the file under its final name only when complete, so a file found
 * is whole.
 */
export async function downloadPackage(p: AptPackage, dir: string): Promise<{ file: string; downloaded: boolean }> {
  const have = await debIn(dir, p);
  if (have) return { file: have, downloaded: false };
  // Root's download dir is not readable by apt's _apt sandbox user: download as root, quietly.
  const r = await execa('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${p.name}=${p.version}`], {
    cwd: dir,
    reject: false,
    stdin: 'ignore',
  });
  const file = await debIn(dir, p);
  if (r.exitCode !== 0 || file === undefined) {
    const text = `${r.stderr}\n${r.stdout}`;
    const why =
      text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith('E:'))
        .pop() ?? `apt-get exited with ${r.exitCode}`;
    const hint = /resolv|connect|unreachable|network|timed out/i.test(text)
      ? 'no network to the Debian archive: connect, or put the .deb files in that directory yourself'
      : 'check the apt sources (apt-get update), or put the .deb there yourself';
    throw new SetupError(
      'KERNEL_DOWNLOAD_FAILED',
      `cannot download ${p.name} ${p.version} into ${dir} (${why.replace(/^E:\s*/, '')}): ${hint}`,
    );
  }
  return { file, downloaded: true };
}

/** apt names a .deb NAME_VERSION_ARCH.deb, with an epoch's `:` written %3a. */
async function debIn(dir: string, p: AptPackage): Promise<string | undefined> {
  const prefix = `${p.name}_${p.version.replace(/:/g, '%3a')}_`;
  const names = await readdir(dir).catch(() => [] as string[]);
  const hit = names.find((n) => n.startsWith(prefix) && n.endsWith('.deb'));
  return hit ? path.join(dir, hit) : undefined;
}
