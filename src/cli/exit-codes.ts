/** Process exit codes, shown in --help and the README. diff's 2/3 match kpatch's create-diff-object. */
export const EXIT = {
  OK: 0,
  /** Bad input or a failed step: the one-line message says what, where and what to do. */
  ERROR: 1,
  /** The change cannot be livepatched safely (diff/build), reasons printed. */
  UNSUPPORTED: 2,
  /** The patch changes no function (diff/build). */
  NO_CHANGE: 3,
  /** Command line not understood. */
  USAGE: 64,
  /** A bug in klpforge: please report it with the stack trace printed. */
  INTERNAL: 70,
} as const;

export const EXIT_CODES_HELP = [
  'Exit codes:',
  '  0   success',
  '  1   error: bad input or a failed step (one line says what, where and what to do)',
  '  2   the change cannot be livepatched safely (diff/build)',
  '  3   the patch changes no function (diff/build)',
  '  64  command line not understood',
  '  70  internal error in klpforge (a bug: please report it)',
  '  130 build interrupted (Ctrl-C); the source tree and the cache are intact',
].join('\n');
