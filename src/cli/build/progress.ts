import type { StageEvent } from '../../pipeline/stages.js';

/** How each stage is named to people. */
export const STAGE_LABEL: Record<StageEvent['stage'], string> = {
  preflight: 'checks',
  kernel: 'kernel packages',
  original: 'original build',
  originals: 'original objects',
  patched: 'patched objects',
  match: 'running-kernel match',
  diff: 'diff',
  generate: 'module',
  verify: 'verify',
};

function seconds(ms: number | undefined): string {
  return ms === undefined ? '' : `${(ms / 1000).toFixed(1)}s`;
}

function bar(done: number, total: number, width = 24): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${done}/${total}`;
}

/**
 * Stage progress on stderr. On a terminal: one live line per stage, with a
 * progress bar for the kernel build, finished with the stage's state and time.
 * Elsewhere (CI logs, pipes): one plain line per stage start and end.
 */
export function progressPrinter(stream: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean }): (e: StageEvent) => void {
  const tty = !!stream.isTTY;
  let live = false;
  let lastPlain = 0;
  return (e) => {
    const label = STAGE_LABEL[e.stage];
    if (tty) {
      if (e.state === 'progress') {
        const what = e.progress ? bar(e.progress.done, e.progress.total) : (e.detail ?? '');
        stream.write(`\r\x1b[K  .. ${label} ${seconds(e.elapsedMs)} ${what}`);
        live = true;
        return;
      }
      if (live) stream.write('\r\x1b[K');
      live = false;
      if (e.state === 'start') {
        stream.write(`  .. ${label}`);
        live = true;
        return;
      }
      stream.write(`${line(e, label)}\n`);
      return;
    }
    if (e.state === 'progress') {
      // Logs get a build progress line at most every 30 s.
      if (!e.progress || (e.elapsedMs ?? 0) - lastPlain < 30_000) return;
      lastPlain = e.elapsedMs ?? 0;
      stream.write(`klpforge: ${label}: ${e.progress.done}/${e.progress.total} objects, ${seconds(e.elapsedMs)}\n`);
      return;
    }
    if (e.state === 'start') {
      lastPlain = 0;
      stream.write(`klpforge: ${label}: started\n`);
      return;
    }
    stream.write(`klpforge: ${line(e, label).trim()}\n`);
  };
}

function line(e: StageEvent, label: string): string {
  const mark = e.state === 'done' ? 'ok' : e.state === 'skipped' ? '--' : 'FAILED';
  return `  ${mark.padEnd(6)} ${label} ${seconds(e.elapsedMs)}${e.detail ? `: ${e.detail}` : ''}`;
}
