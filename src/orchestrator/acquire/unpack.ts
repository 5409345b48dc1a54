import { access, mkdir, readdir, rename, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { SetupError } from '../setup-errors.js';

/**
 * Taking what klpforge needs out of Debian packages, without unpacking the
 * rest: a .deb's data is one compressed tar stream, and GNU tar stops reading
 * at the first match with --occurrence, so the 633 MB vmlinux near the start
 * of the -dbg package (858 MB .deb, 5.6 GB unpacked) comes out in ~7 s.
 */

/** One member of a .deb (a path as the package lists it, `./usr/...`), written to `dest`. */
export async function extractMember(deb: string, member: string, dest: string): Promise<void> {
  const dir = `${dest}.part-${process.pid}`;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    // dpkg-deb dies of SIGPIPE once tar has what it wants: only tar's status counts.
    const r = await execa(
      'bash',
      ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x --occurrence=1 -C "$2" "$3"; exit ${PIPESTATUS[1]}', 'unpack', deb, dir, member],
      { reject: false, stdin: 'ignore' },
    );
    const got = path.join(dir, member);
    if (r.exitCode !== 0 || !(await exists(got))) {
      throw new SetupError(
        'KERNEL_UNPACK_FAILED',
        `${deb}: no ${member} in it (${lastLine(r.stderr) || `tar exited with ${r.exitCode}`}): delete the file so it is downloaded again`,
      );
    }
    await rename(got, dest);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The whole data of a .deb under `dest` (made atomically: absent, or complete). */
export async function extractAll(deb: string, dest: string): Promise<void> {
  const dir = `${dest}.part-${process.pid}`;
  await rm(dir, { recursive: true, force: true });
  const r = await execa('dpkg-deb', ['-x', deb, dir], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new SetupError(
      'KERNEL_UNPACK_FAILED',
      `${deb}: dpkg-deb -x failed (${lastLine(r.stderr)}): delete the file so it is downloaded again`,
    );
  }
  await rm(dest, { recursive: true, force: true });
  await rename(dir, dest);
}

/**
 * A kernel source tarball inside a .deb (linux-source-X.Y ships
 * /usr/src/linux-source-X.Y.tar.xz), unpacked to `dest`, which then holds
 * the tree itself. `tarball` may instead name the tarball on disk (the
 * installed package's), skipping the .deb.
 */
export async function unpackSourceTree(from: { deb: string; member: string } | { tarball: string }, dest: string): Promise<void> {
  const dir = `${dest}.part-${process.pid}`;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const script =
    'deb' in from
      ? 'dpkg-deb --fsys-tarfile "$1" | tar -xO --occurrence=1 "$2" | tar -xJ -C "$3"; s=("${PIPESTATUS[@]}"); exit $(( s[1] | s[2] ))'
      : 'tar -xf "$1" -C "$3"';
  const args = 'deb' in from ? [from.deb, from.member, dir] : [from.tarball, '', dir];
  const r = await execa('bash', ['-c', script, 'unpack', ...args], { reject: false, stdin: 'ignore' });
  const top = r.exitCode === 0 ? await singleTopDir(dir) : undefined;
  if (top === undefined) {
    await rm(dir, { recursive: true, force: true });
    throw new SetupError(
      'KERNEL_UNPACK_FAILED',
      `${'deb' in from ? from.deb : from.tarball}: the kernel source did not unpack (${lastLine(r.stderr) || 'no single top directory'})`,
    );
  }
  await rm(dest, { recursive: true, force: true });
  await rename(path.join(dir, top), dest);
  await rm(dir, { recursive: true, force: true });
}

async function singleTopDir(dir: string): Promise<string | undefined> {
  const names = await readdir(dir);
  return names.length === 1 ? names[0] : undefined;
}

/** Refuses early, before downloading or unpacking, when `dir`'s filesystem has less than `bytes` free. */
export async function ensureFreeSpace(dir: string, bytes: number, what: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const s = await statfs(dir);
  const free = s.bavail * s.bsize;
  if (free < bytes) {
    throw new SetupError(
      'DISK_TOO_SMALL',
      `${dir} has ${gib(free)} free, but ${what} needs about ${gib(bytes)}: free space there or pass --cache-dir on a larger disk`,
    );
  }
}

const gib = (n: number): string => `${(n / 2 ** 30).toFixed(1)} GiB`;
const lastLine = (s: string): string =>
  s
    .trim()
    .split('\n')
    .filter((l) => !l.includes('Broken pipe'))
    .pop() ?? '';

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
