import { open } from 'node:fs/promises';

/**
 * Progress of a kernel build, read from make's log as it grows. make runs
 * through a Runner that only returns at the end (and may be a sandbox), so
 * its output goes to a log file the runner can write and this tails it: the
 * same file is the full log named in any error.
 *
 * kbuild prints one short line per step (`  CC      init/main.o`,
 * `  CC [M]  fs/x.o`, `  AS      arch/x86/entry/entry_64.o`, `  LD      vmlinux.o`);
 * compiles, assembles and links are counted, which is what the `.o` targets
 * of the build are (other steps are few and fast).
 */
export const PROGRESS_LINE = /^ {2}(?:CC|AS|LD)(?: \[M\])? +\S/;

export interface BuildProgress {
  /** CC/AS/LD steps done so far. */
  compiled: number;
  /** Estimated steps in all; never below `compiled`. */
  total: number;
}

export class LogProgress {
  compiled = 0;
  private position = 0;
  private partial = '';
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly estimate: number,
    private readonly onProgress?: (p: BuildProgress) => void,
  ) {}

  get progress(): BuildProgress {
    return { compiled: this.compiled, total: Math.max(this.estimate, this.compiled) };
  }

  start(intervalMs = 500): void {
    this.timer = setInterval(() => {
      this.reading = this.reading.then(() => this.read()).catch(() => undefined);
    }, intervalMs);
  }

  /** Stops polling and reads what is left, so the final count is exact. */
  async stop(): Promise<BuildProgress> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.reading;
    await this.read();
    if (this.partial !== '') this.count(this.partial);
    this.partial = '';
    return this.progress;
  }

  private async read(): Promise<void> {
    const handle = await open(this.file, 'r').catch(() => undefined);
    if (!handle) return; // not created yet
    try {
      const before = this.compiled;
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, buf.length, this.position);
        if (bytesRead === 0) break;
        this.position += bytesRead;
        const lines = (this.partial + buf.toString('latin1', 0, bytesRead)).split('\n');
        this.partial = lines.pop()!;
        for (const line of lines) this.count(line);
      }
      if (this.compiled !== before) this.onProgress?.(this.progress);
    } finally {
      await handle.close();
    }
  }

  private count(line: string): void {
    if (PROGRESS_LINE.test(line)) this.compiled++;
  }
}
