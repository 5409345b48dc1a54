import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { readElfFile } from '../../src/elf/index.js';
import { REPO_ROOT } from '../helpers/kernel.js';
import { readelfNormalized } from '../helpers/readelf.js';
import { compileC, linkRelocatable } from '../helpers/toolchain.js';

const FLAGS = ['-O2', '-ffunction-sections', '-fdata-sections', '-pg', '-mfentry', '-mrecord-mcount', '-fno-PIE', '-mcmodel=kernel'];
const SRC = `extern int consume(long);\nint limit = 4;\nint show(long x) { return consume(x + limit); }\n`;

/** kpatch's create-diff-object exit codes, through the real CLI: 0 changed, 3 nothing, 2 refused, 1 bad input. */
describe('klpforge diff on the command line', () => {
  let tmp: DirectoryResult;
  let orig: string;
  const cli = (...args: string[]) => execa('node', [path.join(REPO_ROOT, 'bin/klpforge.js'), 'diff', ...args], { reject: false });
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    orig = await compileC(tmp.path, 'orig', SRC, FLAGS);
  }, 120_000);
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('exits 0 and names the changed function, writing an output object ld accepts', async () => {
    const patched = await compileC(tmp.path, 'changed', SRC.replace('x + limit', 'x - limit'), FLAGS);
    const out = path.join(tmp.path, 'out.o');
    const r = await cli(orig, patched, '-o', out);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^changed function: show \(at \+0x[0-9a-f]+: /m);
    const model = await readElfFile(out);
    expect(model.findSection('.text.show')).toBeDefined();
    expect(model.findSection('.klpforge.diff')).toBeDefined();
    await readelfNormalized(out);
    await linkRelocatable(tmp.path, out);
  }, 60_000);

  it('exits 3 when nothing changed, and prints JSON with the agreed fields', async () => {
    const same = await compileC(tmp.path, 'same', SRC, FLAGS);
    const r = await cli(orig, same, '--json');
    expect(r.exitCode).toBe(3);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ outcome: 'no-change', changed: [], new: [], errors: [] });
  }, 60_000);

  it('exits 2 with the reason in errors when the change is refused', async () => {
    const data = await compileC(tmp.path, 'data', SRC.replace('limit = 4', 'limit = 5'), FLAGS);
    const r = await cli(orig, data, '--json');
    expect(r.exitCode).toBe(2);
    const j = JSON.parse(r.stdout) as { errors: string[] };
    expect(j.errors).toEqual([expect.stringMatching(/^data limit in \.data\.limit changed/)]);
  }, 60_000);

  it('exits 1 with one line for bad input, and 64 for a malformed --entry-size', async () => {
    const r = await cli(orig, path.join(tmp.path, 'orig.c'));
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/orig\.c: not an ELF file/);
    const u = await cli(orig, orig, '--entry-size', '__bug_table=twelve');
    expect(u.exitCode).toBe(64);
  }, 60_000);
});
