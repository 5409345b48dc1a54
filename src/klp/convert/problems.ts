/**
 * Why `klpforge convert` can't make a module of a hand-written livepatch, as
 * values: each names the symbol or function and says what the author can do.
 */
export type ConvertProblemCode =
  /** A symbol the module uses is in neither the kernel's exports, vmlinux nor any module given. */
  | 'CONVERT_UNRESOLVED'
  /** A name exists more than once and no KLPFORGE_SYMPOS says which. */
  | 'CONVERT_AMBIGUOUS'
  /** A KLPFORGE_SYMPOS that is malformed, contradicts another, or names a position that does not exist. */
  | 'CONVERT_ANNOTATION'
  /** A replaced function exists only as gcc's clone (NAME.isra.N, .constprop.N, .part.N). */
  | 'CONVERT_CLONE_ONLY'
  /** A replaced function has no out-of-line copy (inlined everywhere) or does not exist. */
  | 'CONVERT_INLINED'
  /** A replaced function exists but has no ftrace entry (notrace): the livepatch core cannot redirect it. */
  | 'CONVERT_NO_FTRACE'
  /** klp_func.old_sympos is 0 for a name the object has more than once, or names a position it does not have. */
  | 'CONVERT_SYMPOS'
  /** A machine klpforge convert does not know yet. */
  | 'CONVERT_ARCH'
  /** What the post-link step found (a symbol still undefined, a reference it cannot place). */
  | 'POST_LINK';

export interface ConvertProblem {
  code: ConvertProblemCode;
  message: string;
}

/** Problems that mean "this module can't be a safe livepatch" (exit 2) rather than bad input (exit 1). */
export const CONVERT_REFUSALS: ReadonlySet<ConvertProblemCode> = new Set([
  'CONVERT_UNRESOLVED',
  'CONVERT_AMBIGUOUS',
  'CONVERT_CLONE_ONLY',
  'CONVERT_INLINED',
  'CONVERT_NO_FTRACE',
  'CONVERT_SYMPOS',
]);
