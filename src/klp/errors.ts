import { KlpforgeError } from '../util/errors.js';
import type { GeneratorProblem } from './problems.js';

/** Problems that mean "this change can't be a livepatch" rather than "the inputs are wrong". */
const REFUSALS = new Set([
  'MODULE_STATIC_KEY',
  'MODULE_SPECIAL_RELOCATION',
  'UNPATCHABLE_FUNCTION',
  'AMBIGUOUS_SYMBOL',
  'DUPLICATE_GLOBAL',
]);

/** The generator's verdict: one line per problem, all of them, before any module is built. */
export class GeneratorError extends KlpforgeError {
  constructor(readonly problems: readonly GeneratorProblem[]) {
    const first = problems[0]!;
    const more =
      problems.length > 1
        ? `\n${problems
            .slice(1)
            .map((p) => p.message)
            .join('\n')}`
        : '';
    super(first.code, `${first.message}${more}`, problems.every((p) => REFUSALS.has(p.code)) ? 2 : 1);
  }
}
