import { EM } from '../../elf/index.js';
import type { ArchRules } from '../arch.js';
import type { SpecialSection } from '../rules/special-sections.js';
import { AARCH64_RULES, AARCH64_SECTIONS } from './aarch64.js';
import { PPC64LE_RULES, PPC64LE_SECTIONS } from './ppc64le.js';
import { S390X_RULES, S390X_SECTIONS } from './s390x.js';
import { X86_64_RULES, X86_64_SECTIONS } from './x86_64.js';

/** What the differ knows of one machine: its rules and its special-section table. */
export interface MachineRows {
  rules: ArchRules;
  sections: readonly SpecialSection[];
}

/** One entry per machine the differ handles, by ELF e_machine (the way objtool keeps arch/<machine>/ apart). */
export const MACHINES: ReadonlyMap<number, MachineRows> = new Map<number, MachineRows>([
  [EM.X86_64, { rules: X86_64_RULES, sections: X86_64_SECTIONS }],
  [EM.S390, { rules: S390X_RULES, sections: S390X_SECTIONS }],
  [EM.PPC64, { rules: PPC64LE_RULES, sections: PPC64LE_SECTIONS }],
  [EM.AARCH64, { rules: AARCH64_RULES, sections: AARCH64_SECTIONS }],
]);
