import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir, type DirectoryResult } from 'tmp-promise';
import { checkCompiler, compareCompilers, probeCompiler } from '../../src/orchestrator/checks/compiler-check.js';
import { checkKernelConfig, CONFIG_RULES } from '../../src/orchestrator/checks/config-check.js';
import {
  canonicalConfig,
  configDifferences,
  configString,
  parseKernelConfig,
  readKernelConfig,
} from '../../src/orchestrator/kbuild/kconfig.js';
import { checkKernelRelease, expectedKernelRelease, sourceKernelVersion } from '../../src/orchestrator/checks/kernel-release.js';
import { HostRunner, type Runner } from '../../src/orchestrator/runners/runner.js';
import { SetupError } from '../../src/orchestrator/setup-errors.js';
import { readElfIdentity, readVmlinuxInfo } from '../../src/orchestrator/checks/vmlinux-info.js';

/** The options a livepatchable x86 kernel has, as kconfig writes them. */
const GOOD = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.192 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
CONFIG_LOCALVERSION=""
# CONFIG_LOCALVERSION_AUTO is not set
CONFIG_NR_CPUS=64
CONFIG_ILLEGAL_POINTER_VALUE=0xdead000000000000
CONFIG_MODULES=y
CONFIG_MODULE_UNLOAD=y
CONFIG_KALLSYMS=y
CONFIG_KALLSYMS_ALL=y
CONFIG_FUNCTION_TRACER=y
CONFIG_DYNAMIC_FTRACE=y
CONFIG_LIVEPATCH=y
CONFIG_SAMPLE_LIVEPATCH=m
CONFIG_RANDSTRUCT_NONE=y
# CONFIG_GCC_PLUGIN_LATENT_ENTROPY is not set
# CONFIG_LTO_CLANG is not set
`;

const config = (text: string) => parseKernelConfig(text, 'test.config');
const edit = (text: string, option: string, line: string | null): string => {
  const lines = text.split('\n').filter((l) => !l.startsWith(`${option}=`) && l !== `# ${option} is not set`);
  if (line !== null) lines.push(line);
  return lines.join('\n');
};

async function expectSetupError(p: Promise<unknown>, code: string, ...fragments: string[]): Promise<SetupError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(SetupError);
  const err = e as SetupError;
  expect(err.code).toBe(code);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

describe('kernel .config parsing', () => {
  test('y/m/n, "is not set", numbers, hex and strings (escapes undone), later lines win', () => {
    const c = config(`${GOOD}CONFIG_CMDLINE="a \\"quoted\\" \\\\ word"\nCONFIG_NR_CPUS=8\n`);
    expect(c.options.get('CONFIG_MODULES')).toBe('y');
    expect(c.options.get('CONFIG_SAMPLE_LIVEPATCH')).toBe('m');
    expect(c.options.get('CONFIG_LTO_CLANG')).toBe('n');
    expect(c.options.get('CONFIG_NR_CPUS')).toBe('8');
    expect(c.options.get('CONFIG_ILLEGAL_POINTER_VALUE')).toBe('0xdead000000000000');
    expect(configString(c, 'CONFIG_CMDLINE')).toBe('a "quoted" \\ word');
    expect(configString(c, 'CONFIG_LOCALVERSION')).toBe('');
    expect(configString(c, 'CONFIG_MODULES')).toBeUndefined();
    // A string "n" is not the tristate n.
    expect(config('CONFIG_X="n"\n').options.get('CONFIG_X')).toBe('"n"');
  });

  test('CRLF line ends and a config fragment (no header) are fine', () => {
    expect(config('CONFIG_A=y\r\n# CONFIG_B is not set\r\n').options).toEqual(
      new Map([
        ['CONFIG_A', 'y'],
        ['CONFIG_B', 'n'],
      ]),
    );
  });

  test.each([
    ['a patch', 'diff --git a/x b/x\n+CONFIG_A=y\n', 'line 1 is not CONFIG_NAME=value'],
    ['a Makefile', 'obj-y += foo.o\n', 'line 1 is not CONFIG_NAME=value'],
    ['an unquoted string', 'CONFIG_A=hello world\n', 'a value kconfig never writes'],
    ['only comments', '# nothing here\n\n', 'no CONFIG_ lines'],
    ['an empty file', '', 'no CONFIG_ lines'],
    ['binary data', '\x7fELF\0\0\0', 'binary data'],
  ])('%s is not a .config', (_what, text, why) => {
    let caught: unknown;
    try {
      config(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SetupError);
    expect((caught as SetupError).code).toBe('CONFIG_NOT_A_CONFIG');
    expect((caught as SetupError).message).toContain('test.config: not a kernel .config');
    expect((caught as SetupError).message).toContain(why);
  });

  test('a missing file and a directory are clear errors', async () => {
    const tmp = await dir({ unsafeCleanup: true });
    try {
      await expectSetupError(
        readKernelConfig(path.join(tmp.path, 'nope')),
        'CONFIG_NOT_FOUND',
        'nope: cannot read the kernel config (ENOENT)',
        '-c/--config',
      );
      await expectSetupError(readKernelConfig(tmp.path), 'CONFIG_NOT_A_CONFIG', 'is a directory');
    } finally {
      await tmp.cleanup();
    }
  });

  test('the canonical form ignores comments, order and "is not set"; differences treat absent as n', () => {
    const a = config(GOOD);
    const b = config(
      GOOD.split('\n')
        .filter((l) => !l.startsWith('#'))
        .reverse()
        .join('\n'),
    );
    expect(canonicalConfig(b)).toBe(canonicalConfig(a));
    expect(canonicalConfig(config(`${GOOD}CONFIG_NR_CPUS=8\n`))).not.toBe(canonicalConfig(a));
    expect(configDifferences(a, config(edit(edit(GOOD, 'CONFIG_MODULE_UNLOAD', null), 'CONFIG_LTO_CLANG', null)))).toEqual([
      { option: 'CONFIG_MODULE_UNLOAD', before: 'y', after: 'n' },
    ]);
  });
});

describe('config checks', () => {
  test('a livepatchable config has no problems', () => {
    expect(checkKernelConfig(config(GOOD))).toEqual([]);
  });

  test.each(['CONFIG_LIVEPATCH', 'CONFIG_DYNAMIC_FTRACE', 'CONFIG_FUNCTION_TRACER', 'CONFIG_KALLSYMS_ALL', 'CONFIG_MODULES'])(
    'missing %s is an error naming it and why',
    (option) => {
      for (const text of [edit(GOOD, option, null), edit(GOOD, option, `# ${option} is not set`)]) {
        const problems = checkKernelConfig(config(text));
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatchObject({ code: 'CONFIG_REQUIRED_MISSING', option, severity: 'error' });
        const rule = CONFIG_RULES.find((r) => r.options.includes(option))!;
        expect(problems[0]!.message).toBe(
          `test.config: ${option} is not set, and a livepatch needs it: ${rule.reason}; only a kernel built and booted with ${option}=y can be livepatched`,
        );
      }
    },
  );

  test('missing MODULE_UNLOAD is a warning', () => {
    expect(checkKernelConfig(config(edit(GOOD, 'CONFIG_MODULE_UNLOAD', null)))).toEqual([
      expect.objectContaining({
        code: 'CONFIG_RECOMMENDED_MISSING',
        option: 'CONFIG_MODULE_UNLOAD',
        severity: 'warning',
      }),
    ]);
  });

  test.each([
    ['CONFIG_GCC_PLUGIN_RANDSTRUCT', 'shuffled'],
    ['CONFIG_RANDSTRUCT_FULL', 'shuffled'],
    ['CONFIG_GCC_PLUGIN_LATENT_ENTROPY', 'random per-build constants'],
    ['CONFIG_LD_DEAD_CODE_DATA_ELIMINATION', '--gc-sections'],
    ['CONFIG_LTO_CLANG_THIN', 'clang LTO is not supported'],
  ])('%s set is an error with the reason', (option, reason) => {
    const problems = checkKernelConfig(config(edit(GOOD, option, `${option}=y`)));
    expect(problems).toEqual([expect.objectContaining({ code: 'CONFIG_FORBIDDEN_SET', option, severity: 'error' })]);
    expect(problems[0]!.message).toContain(`test.config: ${option} is set, and binary-diff livepatching cannot work with it: `);
    expect(problems[0]!.message).toContain(reason);
  });

  test('options known to need care are warnings', () => {
    const problems = checkKernelConfig(config(`${GOOD}CONFIG_MODULE_SIG_FORCE=y\nCONFIG_DEBUG_INFO_BTF=y\n`));
    expect(problems.map((p) => [p.code, p.option, p.severity])).toEqual([
      ['CONFIG_DISCOURAGED_SET', 'CONFIG_DEBUG_INFO_BTF', 'warning'],
      ['CONFIG_DISCOURAGED_SET', 'CONFIG_MODULE_SIG_FORCE', 'warning'],
    ]);
  });

  test('several problems: errors first, one per rule', () => {
    let text = edit(GOOD, 'CONFIG_MODULE_UNLOAD', null);
    text = edit(text, 'CONFIG_KALLSYMS_ALL', null);
    text += '\nCONFIG_LTO_CLANG=y\nCONFIG_LTO_CLANG_FULL=y\n';
    expect(checkKernelConfig(config(text)).map((p) => [p.severity, p.option])).toEqual([
      ['error', 'CONFIG_KALLSYMS_ALL'],
      ['error', 'CONFIG_LTO_CLANG'],
      ['warning', 'CONFIG_MODULE_UNLOAD'],
    ]);
  });
});

describe('kernel release of a source tree', () => {
  let tmp: DirectoryResult;
  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  async function tree(extraversion = ''): Promise<string> {
    const src = path.join(tmp.path, 'linux');
    await mkdir(src, { recursive: true });
    await writeFile(
      path.join(src, 'Makefile'),
      `# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =${extraversion ? ` ${extraversion}` : ''}\nNAME = Curry Ramen\n`,
    );
    return src;
  }

  test('kernelversion from the top Makefile, localversion files, CONFIG_LOCALVERSION and $LOCALVERSION', async () => {
    const src = await tree('-rc1');
    expect(await sourceKernelVersion(src)).toBe('6.1.192-rc1');
    await writeFile(path.join(src, 'localversion-b'), '-b\n');
    await writeFile(path.join(src, 'localversion-a'), '-a');
    await writeFile(path.join(src, 'localversion-z~'), '-backup');
    const c = config(edit(GOOD, 'CONFIG_LOCALVERSION', 'CONFIG_LOCALVERSION="-klp"'));
    expect(await expectedKernelRelease(src, c, {})).toEqual({
      release: '6.1.192-rc1-a-b-klp',
      exact: true,
      from: `${src} with test.config`,
    });
    expect((await expectedKernelRelease(src, c, { LOCALVERSION: '-x' })).release).toBe('6.1.192-rc1-a-b-klp-x');
  });

  test('a git tree or LOCALVERSION_AUTO makes the suffix unknown: only the prefix is checked', async () => {
    const src = await tree();
    await mkdir(path.join(src, '.git'));
    const e = await expectedKernelRelease(src, config(GOOD), {});
    expect(e).toMatchObject({ release: '6.1.192', exact: false });
    expect(checkKernelRelease({ file: 'vmlinux', release: '6.1.192-00001-gdeadbeef' }, e)).toBeUndefined();
    expect(checkKernelRelease({ file: 'vmlinux', release: '6.1.19' }, e)?.code).toBe('VMLINUX_RELEASE_MISMATCH');
    // LOCALVERSION set (even empty) and no AUTO: git adds nothing.
    expect((await expectedKernelRelease(src, config(GOOD), { LOCALVERSION: '' })).exact).toBe(true);
  });

  test('a mismatch names both releases and what to do', async () => {
    const src = await tree();
    const p = checkKernelRelease(
      { file: '/boot/vmlinux', release: '5.15.0-91-generic' },
      await expectedKernelRelease(src, config(GOOD), {}),
    );
    expect(p).toEqual({
      code: 'VMLINUX_RELEASE_MISMATCH',
      severity: 'error',
      vmlinuxRelease: '5.15.0-91-generic',
      expected: '6.1.192',
      message:
        `/boot/vmlinux is Linux 5.15.0-91-generic, but ${src} with test.config builds 6.1.192: ` +
        'pass the vmlinux of the kernel this source and config built (the module would only load into that kernel), or the source and config of this vmlinux',
    });
  });

  test('not a kernel tree', async () => {
    await expectSetupError(sourceKernelVersion(tmp.path), 'SOURCE_NOT_USABLE', 'no Makefile, so not a kernel source tree');
    await writeFile(path.join(tmp.path, 'Makefile'), 'all:\n\ttrue\n');
    await expectSetupError(sourceKernelVersion(tmp.path), 'SOURCE_NOT_USABLE', 'no VERSION line');
  });
});

describe('vmlinux identity and the compiler check', () => {
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });
  const runner = new HostRunner();

  /** A small ELF with a linux_banner and gcc's .comment, optionally with .comment replaced. */
  async function fakeKernel(name: string, banner: string, comment?: string): Promise<string> {
    const src = path.join(tmp.path, `${name}.c`);
    const obj = path.join(tmp.path, `${name}.o`);
    await writeFile(src, `const char other[] = "Linux version is a string";\nconst char linux_banner[] = ${JSON.stringify(banner)};\n`);
    await execa('gcc', ['-c', '-O2', '-fno-toplevel-reorder', '-o', obj, src]);
    if (comment !== undefined) {
      await writeFile(path.join(tmp.path, `${name}.comment`), `${comment}\0`);
      await execa('objcopy', [`--update-section=.comment=${path.join(tmp.path, `${name}.comment`)}`, obj]);
    }
    return obj;
  }

  test('the banner, its release and the GCC string are read', async () => {
    const file = await fakeKernel('k1', 'Linux version 6.1.192-klp (root@vm) (gcc (Debian 12.2.0) 12.2.0, GNU ld 2.40) #1 SMP\n');
    const info = await readVmlinuxInfo(file);
    expect(info.release).toBe('6.1.192-klp');
    expect(info.banner).toBe('Linux version 6.1.192-klp (root@vm) (gcc (Debian 12.2.0) 12.2.0, GNU ld 2.40) #1 SMP');
    expect(info.gcc).toHaveLength(1);
    expect(info.gcc[0]).toMatch(/^GCC: /);
    // Stripped (no linux_banner symbol): the first "Linux version <digit>" of .rodata.
    await execa('objcopy', ['--strip-all', file, `${file}.stripped`]);
    expect((await readVmlinuxInfo(`${file}.stripped`)).release).toBe('6.1.192-klp');
  });

  test('the compiler that builds the patch matches the one that built the file; a fake .comment does not', async () => {
    const good = await readVmlinuxInfo(await fakeKernel('k2', 'Linux version 6.1.0 (x) #1\n'));
    const probe = await probeCompiler({ runner, workDir: tmp.path });
    expect(await checkCompiler({ runner, workDir: tmp.path, target: good })).toEqual({
      status: 'match',
      target: probe.gcc[0],
      patch: probe.gcc[0],
    });

    const old = await readVmlinuxInfo(await fakeKernel('k3', 'Linux version 6.1.0 (x) #1\n', 'GCC: (Debian 10.2.1-6) 10.2.1 20210110'));
    const r = await checkCompiler({ runner, workDir: tmp.path, target: old });
    expect(r.status).toBe('mismatch');
    if (r.status !== 'mismatch') return;
    expect(r.problem.code).toBe('COMPILER_MISMATCH');
    expect(r.problem.message).toContain('was built by "GCC: (Debian 10.2.1-6) 10.2.1 20210110"');
    expect(r.problem.message).toContain(`the patch would be built by "${probe.gcc[0]}"`);
    expect(r.problem.message).toContain('--skip-compiler-check');
    expect(await checkCompiler({ runner, workDir: tmp.path, target: old, skip: true })).toEqual({ status: 'skipped' });
  });

  test('a target with no or several compiler strings never matches', async () => {
    const patch = { file: 'p.o', comments: ['GCC: (A) 1'], gcc: ['GCC: (A) 1'] };
    expect(compareCompilers({ file: 'v', comments: [], gcc: [] }, patch)).toMatchObject({
      status: 'mismatch',
      target: '(no compiler recorded in .comment)',
    });
    expect(compareCompilers({ file: 'v', comments: ['GCC: (A) 1', 'GCC: (B) 2'], gcc: ['GCC: (A) 1', 'GCC: (B) 2'] }, patch)).toMatchObject(
      { status: 'mismatch', target: 'GCC: (A) 1 + GCC: (B) 2' },
    );
    expect(compareCompilers({ file: 'v', comments: ['GCC: (A) 1', 'Linker: LLD 15'], gcc: ['GCC: (A) 1'] }, patch).status).toBe('match');
  });

  test('the probe runs through the runner: a sandbox whose compiler fails is a clear error', async () => {
    const broken: Runner = { run: async () => ({ exitCode: 127, stdout: '', stderr: 'sh: 1: gcc: not found' }) };
    await expectSetupError(
      probeCompiler({ runner: broken, workDir: tmp.path }),
      'COMPILER_UNUSABLE',
      'gcc could not compile an empty file (exit 127)',
      'gcc: not found',
    );
    const seen: string[][] = [];
    const recording: Runner = {
      run: (argv, o) => {
        seen.push([...argv]);
        return runner.run(argv, o);
      },
    };
    await probeCompiler({ runner: recording, workDir: tmp.path, cc: 'gcc' });
    expect(seen).toEqual([['gcc', '-c', 'probe.c', '-o', 'probe.o']]);
  });

  test('a bzImage-like file, a missing file and an ELF without a banner are clear errors', async () => {
    const blob = path.join(tmp.path, 'bzImage');
    await writeFile(blob, Buffer.concat([Buffer.from('MZ'), Buffer.alloc(600, 1)]));
    await expectSetupError(readVmlinuxInfo(blob), 'VMLINUX_NOT_A_KERNEL', 'not bzImage or vmlinuz');
    await expectSetupError(readVmlinuxInfo(path.join(tmp.path, 'none')), 'VMLINUX_NOT_FOUND', '-v/--vmlinux');
    const src = path.join(tmp.path, 'plain.c');
    await writeFile(src, 'int x;\n');
    await execa('gcc', ['-c', '-o', path.join(tmp.path, 'plain.o'), src]);
    await expectSetupError(readVmlinuxInfo(path.join(tmp.path, 'plain.o')), 'VMLINUX_NOT_A_KERNEL', 'no "Linux version" banner');
    expect((await readElfIdentity(path.join(tmp.path, 'plain.o'))).gcc).toHaveLength(1);
  });
});
