import { checkKernelConfig } from '../../src/orchestrator/checks/config-check.js';
import { parseKernelConfig } from '../../src/orchestrator/kbuild/kconfig.js';
import { machineCompiler, machineMakeVars, machineOfConfig, runningCflagsOf } from '../../src/orchestrator/kbuild/machine.js';

const LIVEPATCH = [
  'CONFIG_MODULES=y',
  'CONFIG_LIVEPATCH=y',
  'CONFIG_FUNCTION_TRACER=y',
  'CONFIG_DYNAMIC_FTRACE=y',
  'CONFIG_KALLSYMS_ALL=y',
  'CONFIG_MODULE_UNLOAD=y',
];
const config = (...lines: string[]) => parseKernelConfig([...LIVEPATCH, ...lines].join('\n'), 'test.config');

describe('the machine comes from the .config', () => {
  test('an x86_64 config built on x86_64 needs no make variables and the host gcc: cache keys stay as before', () => {
    const m = machineOfConfig(config('CONFIG_64BIT=y', 'CONFIG_X86_64=y', 'CONFIG_X86=y'));
    expect(m.name).toBe('x86_64');
    expect(machineMakeVars(m, 'x64')).toEqual([]);
    expect(machineCompiler(m, 'x64')).toBe('gcc');
    expect(m.bootImage).toBe('arch/x86/boot/bzImage');
  });

  test('an s390x config built here cross-compiles with ARCH=s390 and s390x-linux-gnu-gcc, vmlinux objects reaching data through the GOT', () => {
    const m = machineOfConfig(config('CONFIG_64BIT=y', 'CONFIG_S390=y'));
    expect(m.name).toBe('s390x');
    expect(machineMakeVars(m, 'x64')).toEqual([
      'ARCH=s390',
      'CROSS_COMPILE=s390x-linux-gnu-',
      'CFLAGS_KERNEL=-mno-pic-data-is-text-relative -fno-section-anchors',
    ]);
    expect(machineCompiler(m, 'x64')).toBe('s390x-linux-gnu-gcc');
    expect(m.bootImage).toBe('arch/s390/boot/bzImage');
  });

  test('on an s390x host the same config builds natively: only the livepatch flags remain', () => {
    const m = machineOfConfig(config('CONFIG_S390=y'));
    expect(machineMakeVars(m, 's390x')).toEqual(['CFLAGS_KERNEL=-mno-pic-data-is-text-relative -fno-section-anchors']);
    expect(machineCompiler(m, 's390x')).toBe('gcc');
  });

  test('the running-kernel copies undo every livepatch flag that changes code', () => {
    const m = machineOfConfig(config('CONFIG_S390=y'));
    expect(m.runningCflags).toEqual(['-mpic-data-is-text-relative', '-fsection-anchors', '-fno-data-sections']);
    // Module objects: only the anchors -fdata-sections took (test/slow/running-copies-cross.test.ts found it).
    expect(runningCflagsOf(m).module).toEqual(['-fno-data-sections']);
    expect(machineOfConfig(config('CONFIG_X86_64=y')).runningCflags).toEqual([]);
  });

  test('a config for a machine klpforge cannot build for is a one-line error naming it', () => {
    expect(() => machineOfConfig(config('CONFIG_ARM64=y'))).toThrow(
      /test\.config: a kernel for ARM64: klpforge builds livepatches for x86_64, s390x and ppc64le kernels/,
    );
    expect(() => machineOfConfig(config('CONFIG_FOO=y'))).toThrow(/an unknown machine/);
    // Big-endian ppc64 is ELFv1, another ABI: refused by name.
    expect(() => machineOfConfig(config('CONFIG_PPC64=y'))).toThrow(/a kernel for big-endian PPC64/);
  });

  test('ppc64le: cross make variables, the large code model and the plugin for vmlinux objects only, undone for the running copies', () => {
    const m = machineOfConfig(config('CONFIG_PPC64=y', 'CONFIG_CPU_LITTLE_ENDIAN=y'));
    expect(m.name).toBe('ppc64le');
    expect(machineCompiler(m, 'x64')).toBe('powerpc64le-linux-gnu-gcc');
    expect(machineMakeVars(m, 'x64', ['-fplugin=/c/klp_local_calls.so'])).toEqual([
      'ARCH=powerpc',
      'CROSS_COMPILE=powerpc64le-linux-gnu-',
      'CFLAGS_KERNEL=-mcmodel=large -fno-optimize-sibling-calls -fplugin=/c/klp_local_calls.so',
      // Modules are large-model already: only the calls change.
      'CFLAGS_MODULE=-fno-optimize-sibling-calls -fplugin=/c/klp_local_calls.so',
    ]);
    expect(runningCflagsOf(m)).toEqual({
      vmlinux: ['-mcmodel=medium', '-foptimize-sibling-calls', '-fno-data-sections', '-fplugin-arg-klp_local_calls-off'],
      module: ['-foptimize-sibling-calls', '-fno-data-sections', '-fplugin-arg-klp_local_calls-off'],
    });
  });
});

describe("a machine's own config rules", () => {
  test('s390x expolines must be extern functions: refused without CONFIG_EXPOLINE_EXTERN, with why', () => {
    const problems = checkKernelConfig(config('CONFIG_S390=y', 'CONFIG_EXPOLINE=y'));
    expect(problems.map((p) => [p.option, p.severity])).toEqual([['CONFIG_EXPOLINE_EXTERN', 'error']]);
    expect(problems[0]!.message).toMatch(/more than 4 GiB away/);
    expect(checkKernelConfig(config('CONFIG_S390=y', 'CONFIG_EXPOLINE=y', 'CONFIG_EXPOLINE_EXTERN=y'))).toEqual([]);
  });

  test('the rule does not apply where the kernel has no expolines (x86_64, or s390x with them off)', () => {
    expect(checkKernelConfig(config('CONFIG_X86_64=y'))).toEqual([]);
    expect(checkKernelConfig(config('CONFIG_S390=y', '# CONFIG_EXPOLINE is not set'))).toEqual([]);
  });
});
