import { type ElfObject, SHN, STB, STT } from '../elf/index.js';
import { type GeneratorProblem, problem } from './problems.js';

/**
 * The global symbols the objects of one livepatch define, by name → the
 * object defining it. All of them are linked into one module, so a
 * reference from one object to another's global (a new helper in one file
 * called from a changed function in another) is resolved by the linker inside
 * the module, not looked up in the running kernel.
 */
export type PatchGlobals = ReadonlyMap<string, string>;

export interface PatchGlobalsResult {
  globals: PatchGlobals;
  /** Two objects defining one strong global: the module's link would fail on it. */
  problems: GeneratorProblem[];
}

/** Built once per livepatch from every differ output, before any object is prepared. */
export function patchGlobals(objects: ReadonlyArray<{ object: string; output: ElfObject }>): PatchGlobalsResult {
  const globals = new Map<string, string>();
  // Weak definitions give way to a strong one, as the linker does; only two strong ones clash.
  const weak = new Set<string>();
  const problems: GeneratorProblem[] = [];
  for (const { object, output } of objects) {
    for (const s of output.symbols) {
      if (s.bind === STB.LOCAL || s.name === '' || s.type === STT.SECTION || s.type === STT.FILE) continue;
      if (s.shndx === SHN.UNDEF && s.reserved === 0) continue;
      const other = globals.get(s.name);
      if (other === undefined || (weak.has(s.name) && s.bind !== STB.WEAK)) {
        globals.set(s.name, object);
        if (s.bind === STB.WEAK) weak.add(s.name);
        else weak.delete(s.name);
        continue;
      }
      if (s.bind === STB.WEAK || weak.has(s.name) || other === object) continue;
      problems.push(problem.duplicateGlobal(other, object, s.name));
    }
  }
  return { globals, problems };
}
