/**
 * Errors meant for people. Every stage throws a subclass; the CLI prints
 * `message` as one line and exits with `exitCode`. Anything else reaching the
 * CLI is a bug in klpforge and is reported as such, with its stack.
 */
export class KlpforgeError extends Error {
  /** Process exit code the CLI uses for this error (documented in --help). */
  readonly exitCode: number;
  /** Stable machine-readable code, e.g. `ELF_TRUNCATED`. */
  readonly code: string;

  constructor(code: string, message: string, exitCode = 1) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

export function isKlpforgeError(e: unknown): e is KlpforgeError {
  return e instanceof KlpforgeError;
}
