import type { ArchRules } from '../arch.js';
import { BUG_TABLE, JUMP_TABLE, MCOUNT_LOC, PRINTK_INDEX } from '../rules/generic-sections.js';
import type { SpecialSection } from '../rules/special-sections.js';

/*
 * ppc64le (ELFv2, Linux built with -mcmodel=medium -mprofile-kernel): relocation numbers from elf.h.
 * R_PPC64_ADDR64 = 38, REL24 = 10 (b/bl), REL14 = 11 (bc), REL32 = 26, REL64 = 44,
 * REL16 = 249, REL16_LO = 250, REL16_HI = 251, REL16_HA = 252 (the global entry's `.TOC.-.` pair;
 * 29..31 are PLT16_LO/HI/HA), REL16DX_HA = 246,
 * TOC16 = 47, TOC16_LO = 48, TOC16_HI = 49, TOC16_HA = 50, TOC16_DS = 63, TOC16_LO_DS = 64:
 * relative to the TOC pointer r2, not to the PC, so their addend is exact.
 */
const R_PPC64_REL24 = 10;
const R_PPC64_REL14 = 11;

export const PPC64LE_RULES: ArchRules = {
  name: 'ppc64le',
  littleEndian: true,
  // -mprofile-kernel: `mflr r0; [std r0,16(r1);] bl _mcount` right after the local entry point, so the
  // call's relocation sits 4 or 8 bytes in, 8 more behind a global entry (`addis r2,r12,.TOC.-.@ha;
  // addi r2,r2,.TOC.-.@l`); gcc 12 drops the std. kpatch looks for a relocation to _mcount.
  ftraceEntry: { form: 'call', symbols: ['_mcount'], relocOffsets: [4, 8, 12, 16], describe: 'bl _mcount (-mprofile-kernel)' },
  // A branch's field is its whole instruction word and P its start: `bl sym+A` reaches sym+A.
  // The REL16 pair of the global entry counts from that entry (the `addi`'s addend is 4), and
  // only ever names `.TOC.`. Anonymous targets are thus exact: no bias, no slack.
  pcrelTypes: new Set([R_PPC64_REL24, R_PPC64_REL14, 26, 44, 246, 249, 250, 251, 252]),
  pcrelBias: 0,
  pcrelSlack: 0,
  // Addresses of symbols gcc can't reach TOC-relative are loaded from `.toc` slots (indirectSections):
  // the slot, not a GOT, holds the address, and the slot is copied with the code.
  gotTypes: new Set(),
  callTypes: new Set([R_PPC64_REL24]),
  // REL24 is the field of b/bl itself (`bl f` is 48 00 00 01 in the object): nothing to look for before it.
  callPrefixes: [{ bytes: [] }],
  returnJumps: [],
  // `li rN,imm16` (addi rN,0,imm): 0x38000000 | RT << 21 | imm, a little-endian word; RA must be 0.
  immediateLoads: [
    { bytes: [0x00, 0x00, 0x00, 0x38], mask: [0x00, 0x00, 0x1f, 0xfc], size: 4, signed: true, bits: { shift: 0, width: 16 } },
  ],
  // ADDR64, REL64: 8; TOC16 (47..50, 63, 64) and REL16 (249..252) are halfword fields; REL24/REL14/REL32/ADDR32: 4.
  zeroKlpFields: false,
  relocFieldSize: new Map([[38, 8], [44, 8], ...[47, 48, 49, 50, 63, 64, 249, 250, 251, 252].map((t): [number, number] => [t, 2])]),
  indirectSections: [{ name: '.toc', slotSize: 8 }],
  moduleSymbols: ['.TOC.'],
};

/**
 * The CPU/MMU/firmware feature fixups (arch/powerpc/include/asm/feature-fixups.h): struct fixup_entry
 * { unsigned long mask, value; long start_off, end_off, alt_start_off, alt_end_off; }, 48 bytes, each
 * offset `label - entry` (relative to the entry's start, not to its own field). The key is start_off.
 */
const fixup = (name: string): SpecialSection => ({ name, defaultSize: 48, keyOffset: 16, entryRelative: true });
/** The one-offset fixups (lwsync, barrier_nospec, the flush and barrier sites): `.8byte site - entry`. */
const siteFixup = (name: string): SpecialSection => ({ name, defaultSize: 8, keyOffset: 0 });

/** ppc64le (arch/powerpc/include/asm, Linux 6.1). */
export const PPC64LE_SECTIONS: readonly SpecialSection[] = [
  fixup('__ftr_fixup'),
  fixup('__mmu_ftr_fixup'),
  fixup('__fw_ftr_fixup'),
  siteFixup('__lwsync_fixup'),
  siteFixup('__barrier_nospec_fixup'),
  siteFixup('__stf_entry_barrier_fixup'),
  siteFixup('__stf_exit_barrier_fixup'),
  siteFixup('__uaccess_flush_fixup'),
  siteFixup('__entry_flush_fixup'),
  siteFixup('__scv_entry_flush_fixup'),
  siteFixup('__rfi_flush_fixup'),
  // struct exception_table_entry { int insn; int fixup; } (relative since 4.6); both fields point at
  // code, so the size is not inferred (4 would fit the relocations too).
  { name: '__ex_table', env: 'EX_STRUCT_SIZE', defaultSize: 8, keyOffset: 0 },
  JUMP_TABLE,
  BUG_TABLE,
  PRINTK_INDEX,
  MCOUNT_LOC,
];
