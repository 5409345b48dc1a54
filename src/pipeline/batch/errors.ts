import { KlpforgeError } from '../../util/errors.js';

export type BatchErrorCode =
  /** The manifest cannot be read, parsed, or names something wrongly. */
  | 'BATCH_MANIFEST'
  /** A command-line value (--shard, the output dir) is not usable. */
  | 'BATCH_INPUT'
  /** A report given to batch-merge is not a batch report, or reports disagree. */
  | 'BATCH_REPORT';

/** A batch that cannot start or a report that cannot be read: exit 1, one line. */
export class BatchError extends KlpforgeError {
  constructor(code: BatchErrorCode, message: string) {
    super(code, message, 1);
  }
}
