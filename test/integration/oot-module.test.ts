import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { buildCase, fixtureCache, verifyCase } from '../helpers/integration.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

const OOT = path.join(REPO_ROOT, 'kernel-fixtures/oot');
const kernel = fixtureKernel();
let cacheDir: string;
let work: DirectoryResult;

beforeAll(async () => {
  cacheDir = await fixtureCache(kernel);
  work = await tmpDir({ unsafeCleanup: true });
}, 300_000);
afterAll(async () => { await work?.cleanup(); });

describe('--oot-module: a livepatch for a module built outside the kernel tree', () => {
  test('klpforge build --oot-module patches the running out-of-tree module, loaded before the livepatch', async () => {
    // The running module: built for the running (plain) kernel from a copy of its source, as its user would.
    const running = path.join(work.path, 'running');
    await cp(path.join(OOT, 'klpforge-hello'), running, { recursive: true });
    await execa('make', ['-C', kernel.plain, `M=${running}`, 'modules'], { stdin: 'ignore' });
    const ko = path.join(running, 'klpforge_hello.ko');
    const source = await readFile(path.join(OOT, 'klpforge-hello/klpforge_hello.c'), 'utf8');

    const out = path.join(work.path, 'out');
    const built = await buildCase(kernel, cacheDir, [path.join(OOT, 'fix.patch')], 'oot-hello', out,
      ['--oot-module', ko, '--oot-module-src', path.join(OOT, 'klpforge-hello'), '--json']);
    if (built.exitCode !== 0) throw new Error(`build failed (${built.exitCode}):\n${built.stderr}\n${built.stdout}`);
    const report = JSON.parse(built.stdout) as { module: string; functions: Array<{ objname: string; functions: Array<{ oldName: string }> }> };
    expect(report.functions).toEqual([expect.objectContaining({ objname: 'klpforge_hello', functions: [expect.objectContaining({ oldName: 'hello_show' })] })]);
    // The module's own source was only read.
    expect(await readFile(path.join(OOT, 'klpforge-hello/klpforge_hello.c'), 'utf8')).toBe(source);

    const v = await verifyCase(kernel, report.module, [await readFile(path.join(OOT, 'check.sh'), 'utf8')], running);
    if (!v.ok) throw new Error(`verify failed:\n${v.run.stderr}\n${v.run.stdout}`);
  }, 900_000);
});
