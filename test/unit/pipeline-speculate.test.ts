import type { Original, OriginalChoice } from '../../src/pipeline/original.js';
import { type Attempt, onOriginal } from '../../src/pipeline/speculate.js';
import type { StageEvent } from '../../src/pipeline/stages.js';

// onOriginal only sequences promises: the originals here are plain records, the work a function that logs what it was given.
const choice = (key: string, buildDir = `/cache/builds/${key}`): OriginalChoice => ({
  key,
  buildDir,
  index: {} as OriginalChoice['index'],
  entrySizes: new Map(),
});
const original = (c: OriginalChoice, hit = true): Original => ({ ...c, hit, warnings: [] });

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
const tick = () => new Promise((r) => setImmediate(r));

function recorder() {
  const shown: StageEvent[] = [];
  const calls: Array<{ key: string; attempt: Attempt['name']; done: boolean }> = [];
  return {
    shown,
    calls,
    progress: (e: StageEvent) => {
      shown.push(e);
    },
  };
}

describe('onOriginal: the patched side runs against the likely cache entry while the key is computed', () => {
  test('no guess: the work waits for the actual entry and runs once, its progress shown live', async () => {
    const r = recorder();
    const actual = deferred<Original>();
    const run = onOriginal({
      likely: Promise.resolve(undefined),
      actual: actual.promise,
      progress: r.progress,
      work: async (o, a) => {
        r.calls.push({ key: o.key, attempt: a.name, done: true });
        a.progress({ stage: 'patched', state: 'start' });
        return `built against ${o.key}`;
      },
    });
    await tick();
    expect(r.calls).toEqual([]); // nothing before the key is known
    actual.resolve(original(choice('k1')));
    const result = await run;
    expect(result).toMatchObject({ result: 'built against k1', speculation: 'none' });
    expect(r.calls).toEqual([{ key: 'k1', attempt: 'actual', done: true }]);
    expect(r.shown).toEqual([{ stage: 'patched', state: 'start' }]);
  });

  test('a confirmed guess: the work started before the key was known is the result, and its progress is shown only then (progress lines dropped)', async () => {
    const r = recorder();
    const actual = deferred<Original>();
    const guess = choice('k1');
    const run = onOriginal({
      likely: Promise.resolve(guess),
      actual: actual.promise,
      progress: r.progress,
      work: async (o, a) => {
        r.calls.push({ key: o.key, attempt: a.name, done: false });
        a.progress({ stage: 'patched', state: 'start' });
        a.progress({ stage: 'patched', state: 'progress', detail: 'compiling' });
        a.progress({ stage: 'patched', state: 'done', elapsedMs: 5 });
        return 'early';
      },
    });
    await tick();
    expect(r.calls).toEqual([{ key: 'k1', attempt: 'likely', done: false }]); // started before the key
    expect(r.shown).toEqual([]); // but nothing shown yet
    actual.resolve(original(choice('k1')));
    await expect(run).resolves.toMatchObject({ result: 'early', speculation: 'confirmed', original: { key: 'k1' } });
    expect(r.shown).toEqual([
      { stage: 'patched', state: 'start' },
      { stage: 'patched', state: 'done', elapsedMs: 5 },
    ]);
    expect(r.calls).toHaveLength(1);
  });

  test('a wrong guess (another key, or the same key in another build dir): the attempt is discarded unseen and the work runs again on the actual entry, after it', async () => {
    for (const actualChoice of [choice('k2'), choice('k1', '/cache/builds/k1-other')]) {
      const r = recorder();
      const log: string[] = [];
      const first = deferred<string>();
      const run = onOriginal({
        likely: Promise.resolve(choice('k1')),
        actual: Promise.resolve(original(actualChoice, false)),
        progress: r.progress,
        work: async (o, a) => {
          log.push(`start ${a.name} ${o.buildDir}`);
          a.progress({ stage: 'patched', state: 'start' });
          const v = a.name === 'likely' ? await first.promise : 'right';
          log.push(`end ${a.name}`);
          return v;
        },
      });
      await tick();
      first.resolve('stale'); // the attempt on the guess ends after the key is known: the second waits for it
      const result = await run;
      expect(result).toMatchObject({ result: 'right', speculation: 'discarded', original: { buildDir: actualChoice.buildDir } });
      expect(log).toEqual(['start likely /cache/builds/k1', 'end likely', `start actual ${actualChoice.buildDir}`, 'end actual']);
      expect(r.shown).toEqual([{ stage: 'patched', state: 'start' }]); // only the second attempt's
    }
  });

  test('a confirmed guess whose work failed: that failure is the outcome (the work is not run again)', async () => {
    let runs = 0;
    const run = onOriginal({
      likely: Promise.resolve(choice('k1')),
      actual: Promise.resolve(original(choice('k1'))),
      progress: () => {},
      work: async () => {
        runs++;
        throw new Error('the patch does not compile');
      },
    });
    await expect(run).rejects.toThrow('the patch does not compile');
    expect(runs).toBe(1);
  });

  test('a discarded guess whose work failed: the failure does not count, the work on the actual entry decides', async () => {
    const run = onOriginal({
      likely: Promise.resolve(choice('k1')),
      actual: Promise.resolve(original(choice('k2'))),
      progress: () => {},
      work: async (o) => {
        if (o.key === 'k1') throw new Error('stale entry');
        return 'ok';
      },
    });
    await expect(run).resolves.toMatchObject({ result: 'ok', speculation: 'discarded' });
  });

  test('the original build fails: its error is the outcome, reported only after the attempt on the guess has stopped', async () => {
    const order: string[] = [];
    const attempt = deferred<string>();
    const actual = deferred<Original>();
    const run = onOriginal({
      likely: Promise.resolve(choice('k1')),
      actual: actual.promise,
      progress: () => {},
      work: async () => {
        const v = await attempt.promise;
        order.push('attempt settled');
        return v;
      },
    }).catch((e: Error) => {
      order.push(`rejected: ${e.message}`);
    });
    actual.reject(new Error('make failed'));
    await tick();
    expect(order).toEqual([]); // still waiting for the attempt
    attempt.resolve('x');
    await run;
    expect(order).toEqual(['attempt settled', 'rejected: make failed']);
  });

  test('an original build that fails before the guess is known is not an unhandled rejection', async () => {
    const likely = deferred<OriginalChoice | undefined>();
    const run = onOriginal({
      likely: likely.promise,
      actual: Promise.reject(new Error('no such tree')),
      progress: () => {},
      work: async () => 'x',
    });
    await tick(); // an unhandled rejection would fail the test run here
    likely.resolve(undefined);
    await expect(run).rejects.toThrow('no such tree');
  });
});
