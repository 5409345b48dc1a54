/**
 * Progress of a build as data: the CLI decides how to show it (a live line
 * on a terminal, one line per stage in logs, JSON at the end).
 */
/**
 * kernel: a distribution kernel's packages fetched and unpacked (--kernel debian:…);
 * original: the full original build from the cache, or the lazy tree prepared;
 * originals: the lazy original's objects the patch reaches, compiled;
 * match: the original objects checked against the running kernel's symbols.
 */
export type StageName = 'preflight' | 'kernel' | 'original' | 'originals' | 'patched' | 'match' | 'diff' | 'generate' | 'verify';

export interface StageEvent {
  stage: StageName;
  state: 'start' | 'progress' | 'done' | 'failed' | 'skipped';
  /** Milliseconds since the stage started (done/failed/progress). */
  elapsedMs?: number;
  detail?: string;
  /** For the kernel build: objects compiled so far, of about `total`. */
  progress?: { done: number; total: number };
}

export type ProgressSink = (e: StageEvent) => void;

export interface StageTiming {
  stage: StageName;
  ms: number;
  state: 'done' | 'failed' | 'skipped';
  detail?: string;
}

/** Runs one stage, reporting its start, end and duration. */
export class StageClock {
  readonly timings: StageTiming[] = [];

  constructor(private readonly sink: ProgressSink) {}

  async run<T>(
    stage: StageName,
    fn: (report: (e: Omit<StageEvent, 'stage' | 'state'>) => void) => Promise<T>,
    detail?: (t: T) => string,
  ): Promise<T> {
    const t0 = performance.now();
    this.sink({ stage, state: 'start' });
    try {
      const value = await fn((e) => this.sink({ stage, state: 'progress', elapsedMs: performance.now() - t0, ...e }));
      const ms = performance.now() - t0;
      const d = detail?.(value);
      this.timings.push({ stage, ms, state: 'done', ...(d ? { detail: d } : {}) });
      this.sink({ stage, state: 'done', elapsedMs: ms, ...(d ? { detail: d } : {}) });
      return value;
    } catch (e) {
      const ms = performance.now() - t0;
      this.timings.push({ stage, ms, state: 'failed' });
      this.sink({ stage, state: 'failed', elapsedMs: ms });
      throw e;
    }
  }

  skip(stage: StageName, detail: string): void {
    this.timings.push({ stage, ms: 0, state: 'skipped', detail });
    this.sink({ stage, state: 'skipped', detail });
  }
}
