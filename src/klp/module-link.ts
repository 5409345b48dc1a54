import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { EM, parseElf, SHN, STB, STT } from '../elf/index.js';

/**
 * Objects kbuild links into every module of a machine (its
 * KBUILD_LDFLAGS_MODULE), relative to the build dir. s390x with
 * CONFIG_EXPOLINE_EXTERN: the expoline thunks (`__s390_indirect_jump_r14`)
 * the compiler calls instead of `br %r14`; vmlinux has its own copies, but a
 * klp relocation to them would be a 32-bit PC-relative branch from a module
 * more than 4 GiB away, so the module's link must supply them, as it does
 * for any other module. The object is present only where the config asks
 * for it (modules_prepare builds it).
 */
const MODULE_LINK_OBJECTS = new Map<number, readonly string[]>([[EM.S390, ['arch/s390/lib/expoline/expoline.o']]]);

/** Global name → the object of the build dir that defines it, for every object the module's link always adds. */
export async function moduleLinkGlobals(buildDir: string, machine: number): Promise<Map<string, string>> {
  const globals = new Map<string, string>();
  for (const rel of MODULE_LINK_OBJECTS.get(machine) ?? []) {
    const bytes = await readFile(path.join(buildDir, rel)).catch(() => undefined);
    if (bytes === undefined) continue;
    for (const s of parseElf(bytes, rel).symbols) {
      if (s.bind === STB.LOCAL || s.type === STT.SECTION || s.type === STT.FILE || s.name === '') continue;
      if (s.shndx === SHN.UNDEF && s.reserved === 0) continue;
      globals.set(s.name, rel);
    }
  }
  return globals;
}
