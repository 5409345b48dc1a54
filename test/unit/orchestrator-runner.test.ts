import { dir } from 'tmp-promise';
import { HostRunner } from '../../src/orchestrator/runners/runner.js';

describe('HostRunner', () => {
  const runner = new HostRunner();

  test('runs in the given cwd with added environment, and a non-zero exit is a result, not an exception', async () => {
    const tmp = await dir({ unsafeCleanup: true });
    try {
      const r = await runner.run(['sh', '-c', 'pwd; echo "$KLP_TEST_VAR" >&2; exit 3'], { cwd: tmp.path, env: { KLP_TEST_VAR: 'hello' } });
      expect(r).toEqual({ exitCode: 3, stdout: `${tmp.path}\n`, stderr: 'hello\n' });
    } finally {
      await tmp.cleanup();
    }
  });

  test('a signal death is reported like a shell does (128 + signal number)', async () => {
    const r = await runner.run(['sh', '-c', 'kill -TERM $$'], { cwd: '/' });
    expect(r.exitCode).toBe(128 + 15);
  });

  test('a program that does not exist is exit 127 with the reason in stderr', async () => {
    const r = await runner.run(['klpforge-no-such-program'], { cwd: '/' });
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain('ENOENT');
  });
});
