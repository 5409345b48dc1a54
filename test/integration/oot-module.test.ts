import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { buildCase, explainRun, integrationFixture, verifyCase } from '../helpers/integration.js';
import { REPO_ROOT } from '../helpers/kernel.js';

const OOT = path.join(REPO_ROOT, 'kernel-fixtures/oot');
const fx = integrationFixture();
const { kernel } = fx;

describe('--oot-module: a livepatch for a module built outside the kernel tree', () => {
  test('klpforge build --oot-module patches the running out-of-tree module, loaded before the livepatch', async () => {
    // The running module: built for the running (plain) kernel from a copy of its source, as its user would.
    const running = path.join(fx.work, 'running');
    await cp(path.join(OOT, 'klpforge-hello'), running, { recursive: true });
    await execa('make', ['-C', kernel.plain, `M=${running}`, 'modules'], { stdin: 'ignore' });
    const ko = path.join(running, 'klpforge_hello.ko');
    const source = await readFile(path.join(OOT, 'klpforge-hello/klpforge_hello.c'), 'utf8');

    const out = path.join(fx.work, 'out');
    const built = await buildCase(kernel, fx.cacheDir, [path.join(OOT, 'fix.patch')], 'oot-hello', out, [
      '--oot-module',
      ko,
      '--oot-module-src',
      path.join(OOT, 'klpforge-hello'),
      '--json',
    ]);
    if (built.exitCode !== 0) throw new Error(explainRun('klpforge build', built));
    const report = JSON.parse(built.stdout) as {
      module: string;
      functions: Array<{ objname: string; functions: Array<{ oldName: string }> }>;
    };
    expect(report.functions).toEqual([
      expect.objectContaining({ objname: 'klpforge_hello', functions: [expect.objectContaining({ oldName: 'hello_show' })] }),
    ]);
    // The module's own source was only read.
    expect(await readFile(path.join(OOT, 'klpforge-hello/klpforge_hello.c'), 'utf8')).toBe(source);

    const v = await verifyCase(kernel, report.module, [path.join(OOT, 'check.sh')], running);
    if (!v.ok) throw new Error(explainRun('klpforge verify', v.run));
  }, 900_000);
});
