import { KlpforgeError } from '../util/errors.js';

export type BuildErrorCode =
  | 'BUILD_NO_CHANGE'
  | 'BUILD_REFUSED'
  | 'BUILD_NOTHING_BUILT'
  | 'BUILD_INPUT'
  /** A filesystem klpforge writes to (work dir, output dir, cache) is full. */
  | 'BUILD_DISK_FULL'
  /** An original object does not match the running kernel (another source, config or compiler). */
  | 'BUILD_ORIGINAL_MISMATCH'
  /** SIGINT/SIGTERM/SIGHUP: stopped, work dir removed. */
  | 'BUILD_INTERRUPTED';

/** One reason a build stopped, as a value: the differ's or the generator's code, where, and the message. */
export interface BuildReason {
  code: string;
  object?: string;
  message: string;
}

/** A build that ends without a module: the message says what and what to do; `reasons` lists every one. */
export class BuildError extends KlpforgeError {
  constructor(
    code: BuildErrorCode,
    message: string,
    exitCode: number,
    readonly reasons: readonly BuildReason[] = [],
  ) {
    super(
      code,
      reasons.length > 0
        ? `${message}\n${reasons.map((r) => `  ${r.object ? `${r.object}: ` : ''}${r.code}: ${r.message}`).join('\n')}`
        : message,
      exitCode,
    );
  }
}
