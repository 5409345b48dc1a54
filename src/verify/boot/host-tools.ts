import { constants } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { VerifyError } from '../errors.js';
import { cachedBusyboxPath, X86_64, type Machine } from './machines.js';

/**
 * The host programs verify needs. Each missing one is one error line naming
 * the Debian package that provides it: verify never installs anything itself.
 */

/** The x86_64 machine's QEMU; each machine names its own (machines.ts). */
export const QEMU_BINARY = X86_64.qemuBinary;
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

/** The guest has no libraries: only a statically linked busybox runs as its /init interpreter. */
export async function findStaticBusybox(): Promise<string> {
  let dynamicOne: string | null = null;
  for (const candidate of BUSYBOX_CANDIDATES) {
    if (!(await isExecutable(candidate))) continue;
    if (await isStaticElf(candidate)) return candidate;
    dynamicOne ??= candidate;
  }
  const found = dynamicOne ? ` (${dynamicOne} is dynamically linked and cannot run in the guest)` : '';
  throw new VerifyError(
    'VERIFY_NO_BUSYBOX',
    `verify needs a statically linked busybox for the guest${found}: install the Debian package busybox-static (apt-get install busybox-static)`,
  );
}

/**
 * The guest's busybox: the host's for a guest of the host's instruction set,
 * else the one scripts/fetch-busybox left in the cache (verify downloads
 * nothing itself: that script is where the network is used).
 */
export async function findBusybox(machine: Machine): Promise<string> {
  if (machine.busybox.kind === 'host') return findStaticBusybox();
  const arch = machine.busybox.debianArch;
  const file = cachedBusyboxPath(arch);
  if ((await isExecutable(file)) && (await isStaticElf(file))) return file;
  throw new VerifyError(
    'VERIFY_NO_BUSYBOX',
    `verify needs a statically linked ${arch} busybox for the ${machine.name} guest at ${file}: run scripts/fetch-busybox ${arch}`,
  );
}

export async function checkQemu(machine: Machine = X86_64): Promise<void> {
  const qemu = machine.qemuBinary;
  const r = await execa(qemu, ['--version'], { reject: false, stdin: 'ignore' });
  if (r.failed) {
    throw new VerifyError(
      'VERIFY_NO_QEMU',
      `verify boots the kernel in ${qemu}, which did not run (${r.code === 'ENOENT' ? 'not found' : r.shortMessage}): install the Debian package ${machine.qemuPackage} (apt-get install ${machine.qemuPackage})`,
    );
  }
}

/**
 * gen_init_cpio is built with every kernel (usr/gen_init_cpio): packing the
 * initramfs with it needs neither root nor the cpio package. Looked for in
 * the build directory the image sits in (BUILD/arch/x86/boot/bzImage,
 * BUILD/arch/s390/boot/bzImage: the machine's kernelImage), then in the
 * --modules build directory.
 */
export async function findGenInitCpio(bzImage: string, modulesDir: string | undefined, machine: Machine = X86_64): Promise<string> {
  const up = machine.kernelImage.split('/').length - 1;
  const candidates = [path.resolve(path.dirname(bzImage), ...Array<string>(up).fill('..'), 'usr/gen_init_cpio')];
  if (modulesDir) candidates.push(path.resolve(modulesDir, 'usr/gen_init_cpio'));
  for (const c of candidates) if (await isExecutable(c)) return c;
  throw new VerifyError(
    'VERIFY_NO_GEN_INIT_CPIO',
    `cannot find the kernel's usr/gen_init_cpio (looked at ${candidates.join(', ')}): pass the bzImage from its build directory (BUILD/${machine.kernelImage}) or --modules BUILD`,
  );
}

async function isExecutable(p: string): Promise<boolean> {
  try {
    await access(p, constants.X_OK);
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

const PT_INTERP = 3;

/**
 * A static executable has no PT_INTERP program header (no dynamic loader to
 * ask for). ELF64 of either byte order: s390x guests' busybox is big-endian.
 */
export async function isStaticElf(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const header = Buffer.alloc(64);
    await fh.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) return false; // ELF64 only
    if (header[5] !== 1 && header[5] !== 2) return false;
    const le = header[5] === 1;
    const u16 = (b: Buffer, at: number) => (le ? b.readUInt16LE(at) : b.readUInt16BE(at));
    const phoff = Number(le ? header.readBigUInt64LE(32) : header.readBigUInt64BE(32));
    const phentsize = u16(header, 54);
    const phnum = u16(header, 56);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const type = le ? table.readUInt32LE(i * phentsize) : table.readUInt32BE(i * phentsize);
      if (type === PT_INTERP) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
}
