export { diffObjects, type DiffOptions, type DiffResult, type FunctionReport, type Outcome } from './diff.js';
export type { Refusal, RefusalCode } from './refusals.js';
export { specialSections, inferEntrySize, type SpecialSection } from './rules/special-sections.js';
export { canonicalName, parentOf } from './model/names.js';
