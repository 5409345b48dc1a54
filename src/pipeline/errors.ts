import { KlpforgeError } from '../util/errors.js';

export type BuildErrorCode = 'BUILD_NO_CHANGE' | 'BUILD_REFUSED' | 'BUILD_NOTHING_BUILT' | 'BUILD_INPUT';

/** A build that ends without a module: the message says what and what to do; the details list every reason. */
export class BuildError extends KlpforgeError {
  constructor(code: BuildErrorCode, message: string, exitCode: number, readonly details: readonly string[] = []) {
    super(code, details.length > 0 ? `${message}\n${details.map((d) => `  ${d}`).join('\n')}` : message, exitCode);
  }
}
