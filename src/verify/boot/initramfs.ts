import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { execa } from 'execa';
import { VerifyError } from '../errors.js';

/** One file to place in the guest: where it goes, where it comes from. */
export interface GuestFile {
  /** Absolute path inside the guest. */
  readonly guestPath: string;
  /** Host path (or, for the init script, its text). */
  readonly source: { readonly file: string } | { readonly text: string };
  readonly mode: number;
}

/**
 * gen_init_cpio reads its list with sscanf("%s"): a name with white space
 * would silently become two fields. Guest paths are ours to choose, so any
 * other character is refused outright rather than escaped.
 */
const SAFE_GUEST_PATH = /^\/[A-Za-z0-9_.+@\/-]+$/;

export function isSafeGuestPath(p: string): boolean {
  return SAFE_GUEST_PATH.test(p) && !p.split('/').includes('..');
}

const octal = (mode: number) => mode.toString(8).padStart(4, '0');

/**
 * The gen_init_cpio list (format: usr/gen_init_cpio.c). `sources` maps each
 * guest path to the host file gen_init_cpio reads, already free of white space.
 */
export function cpioList(files: readonly GuestFile[], sources: ReadonlyMap<string, string>): string {
  const dirs = new Set<string>(['/bin', '/dev', '/proc', '/sys', '/tmp']);
  for (const f of files) {
    for (let d = path.posix.dirname(f.guestPath); d !== '/'; d = path.posix.dirname(d)) dirs.add(d);
  }
  const lines: string[] = [];
  for (const d of [...dirs].sort()) lines.push(`dir ${d} ${d === '/tmp' ? '1777' : '0755'} 0 0`);
  // The kernel opens /dev/console for init's stdin/stdout before /init runs, so it must exist before devtmpfs is mounted.
  lines.push('nod /dev/console 0600 0 0 c 5 1');
  for (const f of files) {
    const src = sources.get(f.guestPath);
    if (src === undefined) throw new RangeError(`no staged source for ${f.guestPath}`);
    lines.push(`file ${f.guestPath} ${src} ${octal(f.mode)} 0 0`);
  }
  return lines.join('\n') + '\n';
}

export interface BuildInitramfsOptions {
  readonly genInitCpio: string;
  /** Scratch directory (no white space in its path): staged links, the list, the output. */
  readonly workDir: string;
  readonly files: readonly GuestFile[];
  readonly output: string;
}

/**
 * Packs the files into a gzip-compressed newc cpio archive. Host files are
 * reached through symlinks in workDir (gen_init_cpio follows them), so host
 * paths with spaces work and nothing large is copied.
 */
export async function buildInitramfs(o: BuildInitramfsOptions): Promise<void> {
  if (/\s/.test(o.workDir)) {
    throw new VerifyError(
      'VERIFY_TMPDIR_SPACES',
      `the temporary directory ${o.workDir} contains white space, which gen_init_cpio cannot read: set TMPDIR to a path without spaces`,
    );
  }
  const stage = path.join(o.workDir, 'stage');
  await mkdir(stage, { recursive: true });
  const sources = new Map<string, string>();
  let n = 0;
  for (const f of o.files) {
    if (!isSafeGuestPath(f.guestPath)) throw new RangeError(`unsafe guest path ${JSON.stringify(f.guestPath)}`);
    const staged = path.join(stage, `${n++}-${path.posix.basename(f.guestPath)}`);
    if ('text' in f.source) await writeFile(staged, f.source.text, { mode: f.mode });
    else await symlink(path.resolve(f.source.file), staged);
    sources.set(f.guestPath, staged);
  }
  const listFile = path.join(o.workDir, 'initramfs.list');
  await writeFile(listFile, cpioList(o.files, sources));
  const r = await execa(o.genInitCpio, [listFile], { encoding: 'buffer', reject: false, stdin: 'ignore', maxBuffer: 1 << 30 });
  if (r.failed) {
    const why = Buffer.from(r.stderr).toString('utf8').trim() || (r.shortMessage ?? 'failed');
    throw new VerifyError(
      'VERIFY_INITRAMFS',
      `${o.genInitCpio} could not pack the initramfs (list: ${listFile}): ${why.split('\n')[0] ?? ''}`,
    );
  }
  await writeFile(o.output, await promisify(gzip)(Buffer.from(r.stdout)));
}

/**
 * Every .ko under a kernel build directory, relative to it. Symlinks are not
 * followed: a build directory links back to its source tree (`source`).
 */
export async function findKernelModules(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile() && e.name.endsWith('.ko')) found.push(r);
    }
  };
  await walk('');
  return found.sort();
}
