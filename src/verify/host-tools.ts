import { constants } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { VerifyError } from './errors.js';

/**
 * The host programs verify needs. Each missing one is one error line naming
 * the Debian package that provides it: verify never installs anything itself.
 */

export const QEMU_BINARY = 'qemu-system-x86_64';
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

export async function checkQemu(): Promise<void> {
  const r = await execa(QEMU_BINARY, ['--version'], { reject: false, stdin: 'ignore' });
  if (r.failed) {
    throw new VerifyError(
      'VERIFY_NO_QEMU',
      `verify boots the kernel in ${QEMU_BINARY}, which did not run (${r.code === 'ENOENT' ? 'not found' : r.shortMessage}): install the Debian package qemu-system-x86 (apt-get install qemu-system-x86)`,
    );
  }
}

/**
 * gen_init_cpio is built with every kernel (usr/gen_init_cpio): packing the
 * initramfs with it needs neither root nor the cpio package. Looked for in
 * the build directory the bzImage sits in (BUILD/arch/x86/boot/bzImage),
 * then in the --modules build directory.
 */
export async function findGenInitCpio(bzImage: string, modulesDir: string | undefined): Promise<string> {
  const candidates = [path.resolve(path.dirname(bzImage), '../../..', 'usr/gen_init_cpio')];
  if (modulesDir) candidates.push(path.resolve(modulesDir, 'usr/gen_init_cpio'));
  for (const c of candidates) if (await isExecutable(c)) return c;
  throw new VerifyError(
    'VERIFY_NO_GEN_INIT_CPIO',
    `cannot find the kernel's usr/gen_init_cpio (looked at ${candidates.join(', ')}): pass the bzImage from its build directory (BUILD/arch/x86/boot/bzImage) or --modules BUILD`,
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

/** A static executable has no PT_INTERP program header (no dynamic loader to ask for). */
export async function isStaticElf(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const header = Buffer.alloc(64);
    await fh.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false; // ELF64 little-endian only
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (table.readUInt32LE(i * phentsize) === PT_INTERP) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
}
