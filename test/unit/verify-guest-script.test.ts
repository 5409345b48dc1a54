import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { generateGuestScript, generateProbeScript, shellQuote } from '../../src/verify/guest/guest-script.js';
import { planSteps } from '../../src/verify/guest/steps.js';
import { readCheckFiles } from '../../src/verify/verify.js';

// The guest runs busybox sh; the host's busybox (busybox-static, needed by verify anyway) parses the same way.
const BUSYBOX = '/bin/busybox';

const NASTY_CHECKS = [
  `grep -q 'this has been live patched' /proc/cmdline`,
  `echo "it's \\"quoted\\" \\$HOME" && test -n "$PATH"`,
  'echo `uname -r`; echo $(( 1 + 2 ))',
  'printf "%s\\n" a\\\\b; echo tab\there',
  'line one\necho line two',
  "echo 'unbalanced \" double'",
  'echo ünïcødé ✓',
];

describe('shellQuote', () => {
  test.each(NASTY_CHECKS)('round-trips %j through busybox sh unchanged', async (s) => {
    const r = await execa(BUSYBOX, ['sh', '-c', `printf '%s' ${shellQuote(s)}`]);
    expect(r.stdout).toBe(s);
  });

  test('refuses a NUL byte, which no shell word can hold', () => {
    expect(() => shellQuote('a\0b')).toThrow(RangeError);
  });
});

describe('generateGuestScript', () => {
  const plan = planSteps('livepatch_sample', NASTY_CHECKS);
  const script = generateGuestScript({ plan, nonce: 'abc123', checkTimeoutSeconds: 30, transitionTimeoutSeconds: 20 });

  test('is valid busybox sh even with checks full of quotes, newlines and substitutions', async () => {
    const r = await execa(BUSYBOX, ['sh', '-n', '-c', script], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  test('a stuck transition names the tasks not yet switched and where they sleep, from /proc/PID/patch_state and stack', async () => {
    const fn = /^pending_tasks\(\) \{\n[\s\S]*?\n\}$/m.exec(script)?.[0];
    expect(fn).toBeDefined();
    // A guest's /proc, bound over the real one in a private mount namespace.
    const proc = await mkdtemp(path.join(tmpdir(), 'klpforge-proc-'));
    const task = async (pid: number, files: Record<string, string>) => {
      await mkdir(path.join(proc, String(pid)));
      for (const [f, v] of Object.entries(files)) await writeFile(path.join(proc, String(pid), f), v);
    };
    try {
      await task(1, { patch_state: '1\n', comm: 'init\n' });
      await task(7, {
        patch_state: '0\n',
        comm: 'kworker/0:1\n',
        stack: '[<0>] worker_thread+0x1a0/0x3c0\n[<0>] kthread+0x10c/0x120\n',
      });
      await task(9, { patch_state: '-1\n', comm: 'sh\n' });
      await mkdir(path.join(proc, 'sys'));
      const r = await execa('bwrap', [
        '--bind',
        '/',
        '/',
        '--dev-bind',
        '/dev',
        '/dev',
        '--bind',
        proc,
        '/proc',
        BUSYBOX,
        'sh',
        '-c',
        `${fn}\npending_tasks 1`,
      ]);
      expect(r.stdout.split('\n')).toEqual([
        'not yet switched: pid 7 (kworker/0:1), patch_state 0; stack: worker_thread+0x1a0/0x3c0 kthread+0x10c/0x120 ',
      ]);
    } finally {
      await rm(proc, { recursive: true, force: true });
    }
  });

  test('starts with the busybox interpreter line the kernel needs to run /init', () => {
    expect(script.split('\n')[0]).toBe('#!/bin/busybox sh');
  });

  test('runs the steps in the kpatch -LOADED.test order: checks fail, load, checks hold, unload, checks fail', () => {
    const order = [...script.matchAll(/^run_step (\S+)/gm)].map((m) => m[1]);
    const n = NASTY_CHECKS.length;
    expect(order).toEqual([
      ...Array.from({ length: n }, (_, i) => `before.${i + 1}`),
      'insmod',
      'transition',
      'enabled',
      ...Array.from({ length: n }, (_, i) => `loaded.${i + 1}`),
      'disable',
      'unpatched',
      'rmmod',
      ...Array.from({ length: n }, (_, i) => `after.${i + 1}`),
    ]);
  });

  test('a check from a file (--check-file) is named by its path in the report; its text is still what runs', async () => {
    const text = '#!/bin/sh\n# a comment line\ngrep -q patched /proc/cmdline\n';
    const plan = planSteps('m', ['true', text], [undefined, 'cases/01/check.sh']);
    expect(plan.steps.filter((st) => st.checkIndex === 1).map((st) => st.title)).toEqual([
      'check 2 fails before loading: cases/01/check.sh',
      'check 2 holds with the patch loaded: cases/01/check.sh',
      'check 2 fails again after unloading: cases/01/check.sh',
    ]);
    expect(plan.steps.find((st) => st.id === 'loaded.1')!.title).toBe('check 1 holds with the patch loaded: true');
    const guest = generateGuestScript({ plan, nonce: 'n', checkTimeoutSeconds: 5, transitionTimeoutSeconds: 5 });
    expect(guest).toContain(shellQuote(text));
    await expect(readCheckFiles(['/no/such/check.sh'])).rejects.toThrow(/^--check-file \/no\/such\/check\.sh: cannot read it \(ENOENT\)$/);
  });

  test('hands busybox sh exactly the check texts, in step order, each as one word', async () => {
    // Run the generated step lines with the step helpers replaced by recorders (shell functions shadow
    // insmod/rmmod, so nothing touches the host's kernel).
    const steps = script.slice(script.indexOf('\nrun_step '), script.indexOf('\nsay "info:tainted'));
    const harness = [
      'run_step() { shift 3; "$@"; }',
      `check() { printf '%s\\036' "$1"; }`,
      'insmod() { :; }; rmmod() { :; }; wait_transition() { :; }; check_enabled() { :; }; disable_patch() { :; }; wait_unpatched() { :; }',
      steps,
    ].join('\n');
    const r = await execa(BUSYBOX, ['sh', '-c', harness]);
    expect(r.stdout.split('\x1e').slice(0, -1)).toEqual([...NASTY_CHECKS, ...NASTY_CHECKS, ...NASTY_CHECKS]);
  });

  test('marks the insmod step as the one that sets LOADED, and makes later steps depend on it', () => {
    expect(script).toMatch(/^run_step insmod succeed 0 insmod '\/klpv\/livepatch_sample\.ko' && LOADED=1$/m);
    expect(script).toMatch(/^run_step loaded\.1 succeed 1 check /m);
    expect(script).toMatch(/^run_step before\.1 fail 0 check /m);
    expect(script).toMatch(/^run_step rmmod succeed 1 rmmod 'livepatch_sample'$/m);
  });

  test('watches the livepatch sysfs directory named after the module and ends with reboot -f', () => {
    expect(script).toContain(`LP='/sys/kernel/livepatch/livepatch_sample'`);
    expect(script).toContain(`M='@@klpv:abc123:'`);
    const tail = script.trimEnd().split('\n').slice(-4);
    expect(tail[1]).toBe('reboot -f');
    expect(script).not.toMatch(/set -e/);
  });

  test('with no checks still loads, waits, disables and unloads', () => {
    const bare = generateGuestScript({ plan: planSteps('m', []), nonce: 'n', checkTimeoutSeconds: 5, transitionTimeoutSeconds: 5 });
    expect([...bare.matchAll(/^run_step (\S+)/gm)].map((m) => m[1])).toEqual([
      'insmod',
      'transition',
      'enabled',
      'disable',
      'unpatched',
      'rmmod',
    ]);
  });
});

describe('generateProbeScript', () => {
  test('is valid busybox sh that reports done through /dev/kmsg and reboots', async () => {
    const s = generateProbeScript('feed');
    const r = await execa(BUSYBOX, ['sh', '-n', '-c', s], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(s).toContain(`'@@klpv:feed:done' > /dev/kmsg`);
    expect(s).toContain('reboot -f');
  });
});
