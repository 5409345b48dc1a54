import { KlpforgeError } from '../util/errors.js';

/** Verify could not run the test at all (missing tool or input); a failed test is a report, not an error. */
export class VerifyError extends KlpforgeError {}
