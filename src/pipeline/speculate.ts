import { type Original, type OriginalChoice, sameOriginal } from './original.js';
import { settle } from '../util/settle.js';
import type { ProgressSink, StageEvent } from './stages.js';

/** Which original build an attempt ran against: the guessed entry, or the one the cache key named. */
export type AttemptName = 'likely' | 'actual';

export interface Attempt {
  name: AttemptName;
  /** Where the attempt reports its stages: held back until the attempt is known to count. */
  progress: ProgressSink;
}

export interface OnOriginalOptions<T> {
  /** likelyOriginal(): resolves to undefined rather than rejecting. */
  likely: Promise<OriginalChoice | undefined>;
  /** originalBuild(): the entry the cache key names (built on a miss). */
  actual: Promise<Original>;
  progress: ProgressSink;
  /** The patched side of the build, run against an original; each attempt must use its own scratch space. */
  work: (original: OriginalChoice, attempt: Attempt) => Promise<T>;
}

export type Speculation = 'confirmed' | 'discarded' | 'none';

export interface OnOriginalResult<T> {
  original: Original;
  result: T;
  /** confirmed: the guess was the key's entry and its attempt is the result; discarded: it was not and the work ran again. */
  speculation: Speculation;
}

/**
 * Runs the patched side against the original build the cache key will most
 * likely name, while the key is still being computed: on a warm cache the
 * key's tree digest (about a second) then costs nothing. Nothing of the
 * attempt is shown or kept until the key confirms the guess: its progress is
 * held back, and its output stays in its own scratch space. A wrong guess
 * (the tree, compiler or config changed since that entry) only costs the
 * attempt; the work runs again against the right entry.
 */
export async function onOriginal<T>(o: OnOriginalOptions<T>): Promise<OnOriginalResult<T>> {
  const real = settle(o.actual); // handled from now on, whichever way the guess goes
  const guess = await o.likely;
  if (guess === undefined) {
    const r = await real;
    if (!r.ok) throw r.error;
    const original = r.value;
    return { original, result: await o.work(original, { name: 'actual', progress: o.progress }), speculation: 'none' };
  }
  const held = new HeldProgress(o.progress);
  const early = settle(o.work(guess, { name: 'likely', progress: held.sink }));
  const r = await real;
  if (!r.ok) {
    await early; // stopped writing before the caller cleans up; its outcome does not count
    throw r.error;
  }
  const original = r.value;
  if (sameOriginal(guess, original)) {
    held.release();
    const attempt = await early;
    if (!attempt.ok) throw attempt.error;
    return { original, result: attempt.value, speculation: 'confirmed' };
  }
  await early; // never run two attempts at once: they would share the cores and the caller's view
  return { original, result: await o.work(original, { name: 'actual', progress: o.progress }), speculation: 'discarded' };
}

/** A progress sink that keeps events until release() passes them (and every later one) on. */
class HeldProgress {
  private held: StageEvent[] | undefined = [];

  constructor(private readonly out: ProgressSink) {}

  readonly sink: ProgressSink = (e) => {
    if (this.held === undefined) this.out(e);
    else if (e.state !== 'progress') this.held.push(e); // a stale progress line is noise once the stage is over
  };

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const e of held) this.out(e);
  }
}
