export { KallsymsIndex, type SymposResult } from './sympos.js';
export {
  generateModule,
  loadKernelSymbols,
  type GenerateOptions,
  type GenerateResult,
  type GeneratorInput,
  type KernelSymbols,
} from './generate.js';
export { GeneratorError } from './errors.js';
export type { GeneratorProblem, GeneratorProblemCode } from './problems.js';
export { prepareObject, type PreparedObject, type PatchedFunction } from './prepare.js';
export { finalizeModule, sectionObjectsOf, type SectionObjects } from './finalize.js';
export { hookSource } from './hook-source.js';
export { resolveSymbol, klpSymbolName, type ResolveContext, type Resolution } from './resolve.js';
export { patchGlobals, type PatchGlobals, type PatchGlobalsResult } from './patch-globals.js';
export { parseSymvers, moduleNameOfPath, type Exports } from './symvers.js';
