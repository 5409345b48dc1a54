import { access } from 'node:fs/promises';
import { ElfError, ElfPeek, STT } from '../../elf/index.js';
import { SetupError } from '../setup-errors.js';

/**
 * What the checks need from a linked kernel (or any ELF file): the compiler
 * strings in `.comment` and the `Linux version …` banner. The vmlinux is read
 * once (tens of MB, hundreds with debug info) and only peeked at: its header
 * tables, `.comment`, the `linux_banner` symbol; both checks use the result.
 */
export interface ElfIdentity {
  file: string;
  /** Every distinct string of `.comment`, in order (`GCC: (Debian 12.2.0-14+deb12u1) 12.2.0`, `Linker: LLD …`). */
  comments: string[];
  /** The `GCC: …` ones among them: one for a kernel built by one gcc. */
  gcc: string[];
}

export interface VmlinuxInfo extends ElfIdentity {
  /** The banner `Linux version 6.1.192 (user@host) (gcc …) #1 SMP …`, as linux_banner holds it. */
  banner: string;
  /** Its release field, UTS_RELEASE: `6.1.192`, `6.1.0-18-amd64`. */
  release: string;
}

/** The .comment strings of an ELF object, module or vmlinux. */
export function elfIdentity(obj: ElfPeek, file: string): ElfIdentity {
  const data = obj.section('.comment')?.data;
  const comments = data
    ? [
        ...new Set(
          data
            .toString('latin1')
            .split('\0')
            .map((s) => s.trim())
            .filter((s) => s !== ''),
        ),
      ]
    : [];
  return { file, comments, gcc: comments.filter((s) => s.startsWith('GCC:')) };
}

const BANNER_PREFIX = 'Linux version ';

/**
 * The banner from the `linux_banner` symbol; when the symbol table is gone
 * (stripped), the first `Linux version <digit>` string of .rodata.
 */
export function kernelBanner(obj: ElfPeek): string | undefined {
  for (const sym of obj.symbolsNamed('linux_banner')) {
    const sec = obj.sections[sym.shndx];
    if (sym.type !== STT.OBJECT || sec === undefined || sec.data.length === 0) continue;
    const start = Number(sym.value - sec.addr);
    if (start < 0 || start >= sec.data.length) continue;
    const text = cString(sec.data, start);
    if (text.startsWith(BANNER_PREFIX)) return text.trimEnd();
  }
  const data = obj.section('.rodata')?.data;
  if (data === undefined) return undefined;
  let at = data.indexOf(BANNER_PREFIX, 0, 'latin1');
  while (at >= 0) {
    const next = data[at + BANNER_PREFIX.length];
    if (next !== undefined && next >= 0x30 && next <= 0x39) return cString(data, at).trimEnd();
    at = data.indexOf(BANNER_PREFIX, at + 1, 'latin1');
  }
  return undefined;
}

function cString(data: Buffer, start: number): string {
  const end = data.indexOf(0, start);
  return data.toString('latin1', start, end < 0 ? data.length : end);
}

export async function readElfIdentity(file: string): Promise<ElfIdentity> {
  return elfIdentity(await readElf(file), file);
}

/** Reads a vmlinux for its compiler strings and release; a bzImage, vmlinuz or non-kernel ELF is a clear error. */
export async function readVmlinuxInfo(file: string): Promise<VmlinuxInfo> {
  return (await readVmlinux(file)).info;
}

/** readVmlinuxInfo, keeping the file's bytes for whoever reads the vmlinux next (its symbols, for the generator). */
export async function readVmlinux(file: string): Promise<{ info: VmlinuxInfo; bytes: Buffer }> {
  const obj = await readElf(file);
  const banner = kernelBanner(obj);
  if (banner === undefined) {
    throw new SetupError(
      'VMLINUX_NOT_A_KERNEL',
      `${file}: no "Linux version" banner in its .rodata, so not a Linux kernel image: pass the vmlinux of the kernel being patched`,
    );
  }
  const release = banner.slice(BANNER_PREFIX.length).split(/\s/, 1)[0]!;
  return { info: { ...elfIdentity(obj, file), banner, release }, bytes: obj.bytes };
}

async function readElf(file: string): Promise<ElfPeek> {
  try {
    await access(file);
  } catch (e) {
    throw new SetupError(
      'VMLINUX_NOT_FOUND',
      `${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)}): pass an existing vmlinux with -v/--vmlinux`,
    );
  }
  try {
    return await ElfPeek.read(file);
  } catch (e) {
    if (!(e instanceof ElfError)) throw e;
    const hint =
      e.code === 'ELF_NOT_ELF'
        ? 'pass the uncompressed ELF vmlinux (e.g. /usr/lib/debug/boot/vmlinux-RELEASE), not bzImage or vmlinuz'
        : 'pass an intact vmlinux';
    throw new SetupError('VMLINUX_NOT_A_KERNEL', `${e.message}: ${hint}`);
  }
}
