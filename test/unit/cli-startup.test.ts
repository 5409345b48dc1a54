import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { asciiFirst, type StringWidth } from '../../src/cli/string-width-shim.js';
import { REPO_ROOT } from '../helpers/kernel.js';
import { compileC } from '../helpers/toolchain.js';

const BIN = path.join(REPO_ROOT, 'bin/klpforge.js');
const FLAGS = ['-O2', '-ffunction-sections', '-fdata-sections', '-pg', '-mfentry', '-mrecord-mcount', '-fno-PIE', '-mcmodel=kernel'];

interface Run {
  code: number | null;
  firstLine: string;
  stderr: string;
}

/**
 * Runs the CLI with its stdout a pipe this side closes: after the first line when `firstLine`, else at once (before
 * the CLI, still starting node, can write anything).
 */
function runWithReaderGone(args: string[], firstLine: boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    if (firstLine)
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        if (out.includes('\n')) child.stdout.destroy();
      });
    else child.stdout.destroy();
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, firstLine: out.split('\n')[0]!, stderr }));
  });
}

/** `klpforge ... | head -1`: the reader going away is not an error, and the command's exit code survives it. */
describe('klpforge with its stdout closed early', () => {
  let tmp: DirectoryResult;
  let orig: string;
  let patched: string;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    // 1000 changed functions: ~230 KB of JSON, more than the pipe (64 KiB) and one read of it can hold, so the CLI
    // is still writing when the reader closes, whatever the timing.
    const source = [
      'extern int consume(long);',
      ...Array.from({ length: 1000 }, (_, i) => `int f${i}(long x) { return consume(x + ${i}); }`),
    ]
      .join('\n')
      .concat('\n');
    [orig, patched] = await Promise.all([
      compileC(tmp.path, 'orig', source, FLAGS),
      compileC(tmp.path, 'patched', source.replaceAll('consume(x + ', 'consume(x - '), FLAGS),
    ]);
  }, 120_000);
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('diff stops writing after the first line and exits 0 (changed), with nothing on stderr', async () => {
    const r = await runWithReaderGone(['diff', orig, patched, '--json'], true);
    expect(r).toEqual({ code: 0, firstLine: '{', stderr: '' });
  }, 60_000);

  it('keeps the command exit code: 3 for no change, 64 for a usage error', async () => {
    expect(await runWithReaderGone(['diff', orig, orig], false)).toEqual({ code: 3, firstLine: '', stderr: '' });
    const usage = await runWithReaderGone(['diff', orig], false);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toMatch(/^klpforge: Not enough non-option arguments/);
  }, 60_000);

  it('--version (answered without yargs) and --help (printed by yargs) exit 0 quietly', async () => {
    expect(await runWithReaderGone(['--version'], false)).toEqual({ code: 0, firstLine: '', stderr: '' });
    expect(await runWithReaderGone(['--help'], false)).toEqual({ code: 0, firstLine: '', stderr: '' });
  }, 60_000);
});

/** The yargs bundle measures help text with src/cli/string-width-shim.ts in front of each string-width (scripts/bundle-yargs.ts). */
describe('the string-width shim', () => {
  // The copies the bundle shims: yargs' own, cliui's and wrap-ansi's, resolved as the bundler does.
  const importers = ['yargs/lib/platform-shims/esm.mjs', 'cliui/index.mjs', 'wrap-ansi/index.js'];
  let copies: { name: string; width: StringWidth }[];
  beforeAll(async () => {
    // One at a time: jest's ESM loader fails concurrent imports that share a dependency (strip-ansi).
    copies = [];
    for (const importer of importers) {
      const file = createRequire(path.join(REPO_ROOT, 'node_modules', importer)).resolve('string-width');
      const m = (await import(pathToFileURL(file).href)) as { default: StringWidth };
      copies.push({ name: path.relative(REPO_ROOT, file), width: m.default });
    }
  });
  const printable = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));

  it('answers what every copy answers: one column for each printable ASCII character', () => {
    for (const { name, width } of copies) for (const c of printable) expect([name, c, width(c)]).toEqual([name, c, 1]);
  });

  it('loads the real one only for other text, and then gives its answers', () => {
    for (const { name, width } of copies) {
      let loads = 0;
      const shimmed = asciiFirst(() => (loads++, width));
      expect(shimmed(printable.join(''))).toBe(printable.length);
      expect(shimmed('')).toBe(0);
      expect([name, loads]).toEqual([name, 0]);
      for (const text of ['…', '→', 'errors, …)', 'コマンド:', '\u001b[1mbold\u001b[22m', 'a\tb', 'é', '👍🏽'])
        expect([name, text, shimmed(text)]).toEqual([name, text, width(text)]);
      expect(shimmed('\u001b[1mbold\u001b[22m', { countAnsiEscapeCodes: true })).toBe(
        width('\u001b[1mbold\u001b[22m', { countAnsiEscapeCodes: true }),
      );
      expect([name, loads]).toEqual([name, 1]);
    }
  });
});
