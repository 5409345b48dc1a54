import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { EM } from '../../src/elf/index.js';
import { assertAcceleratorPossible, chooseAccelerator } from '../../src/verify/boot/accel.js';
import { findBusybox, findGenInitCpio, isStaticElf } from '../../src/verify/boot/host-tools.js';
import {
  cachedBusyboxPath,
  guestCmdline,
  kvmPossible,
  machineFor,
  machineOfModule,
  MACHINES,
  X86_64,
} from '../../src/verify/boot/machines.js';
import { GUEST_CMDLINE, qemuArgs } from '../../src/verify/boot/qemu.js';
import { assemble } from '../helpers/toolchain.js';

let work: DirectoryResult;
beforeAll(async () => {
  work = await tmpDir({ unsafeCleanup: true });
});
afterAll(async () => {
  await work?.cleanup();
});

const S390X = machineFor(EM.S390, 'test.ko');
const PPC64LE = machineFor(EM.PPC64, 'test.ko');
const run = { kernel: 'K', initramfs: 'I', append: 'A', timeoutMs: 1, serialLog: 'S' } as const;

describe('the machine table', () => {
  test('one row per ELF machine, each with its QEMU, console and kernel image', () => {
    expect(new Set(MACHINES.map((m) => m.elfMachine)).size).toBe(MACHINES.length);
    expect(MACHINES.map((m) => [m.name, m.qemuBinary, m.console, m.kernelImage])).toEqual([
      ['x86_64', 'qemu-system-x86_64', 'ttyS0', 'arch/x86/boot/bzImage'],
      ['s390x', 'qemu-system-s390x', 'ttysclp0', 'arch/s390/boot/bzImage'],
      ['ppc64le', 'qemu-system-ppc64', 'hvc0', 'vmlinux'],
    ]);
    expect(machineFor(EM.X86_64, 'x.ko')).toBe(X86_64);
  });

  test('x86_64 guests get exactly the QEMU arguments and command line verify always used', () => {
    expect(GUEST_CMDLINE).toBe('console=ttyS0 panic=-1');
    expect(guestCmdline(X86_64)).toBe(GUEST_CMDLINE);
    const common = ['-kernel', 'K', '-initrd', 'I', '-append', 'A', '-nographic', '-no-reboot', '-m', '512'];
    expect(qemuArgs({ ...run, accel: 'tcg' })).toEqual([...common, '-accel', 'tcg']);
    expect(qemuArgs({ ...run, accel: 'kvm', machine: X86_64 })).toEqual([...common, '-accel', 'kvm', '-cpu', 'host']);
  });

  test("s390x guests: the virtio-ccw board, TCG's qemu CPU model, the SCLP console, the cached busybox", () => {
    expect(qemuArgs({ ...run, accel: 'tcg', machine: S390X })).toEqual([
      '-M',
      's390-ccw-virtio',
      ...['-kernel', 'K', '-initrd', 'I', '-append', 'A', '-nographic', '-no-reboot', '-m', '512'],
      ...['-accel', 'tcg', '-cpu', 'qemu'],
    ]);
    expect(guestCmdline(S390X)).toBe('console=ttysclp0 panic=-1');
    expect(S390X.busybox).toEqual({ kind: 'cache', debianArch: 's390x' });
    expect(X86_64.busybox).toEqual({ kind: 'host' });
  });

  test('ppc64le guests: the pseries board without default devices, TCG’s missing Spectre capabilities declared, POWER9, hvc0, the ppc64el busybox', () => {
    expect(qemuArgs({ ...run, accel: 'tcg', machine: PPC64LE })).toEqual([
      ...['-M', 'pseries', '-nodefaults', '-serial', 'stdio'],
      ...['-kernel', 'K', '-initrd', 'I', '-append', 'A', '-nographic', '-no-reboot', '-m', '512'],
      ...['-accel', 'tcg', '-machine', 'cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off', '-cpu', 'power9'],
    ]);
    // Under KVM the host's CPU, and QEMU's default capabilities: a POWER host has the mitigations.
    expect(qemuArgs({ ...run, accel: 'kvm', machine: PPC64LE }).slice(-4)).toEqual(['-accel', 'kvm', '-cpu', 'host']);
    expect(guestCmdline(PPC64LE)).toBe('console=hvc0 panic=-1');
    expect(PPC64LE.qemuPackage).toBe('qemu-system-ppc');
    expect(PPC64LE.busybox).toEqual({ kind: 'cache', debianArch: 'ppc64el' });
  });

  test('a machine verify cannot boot is one error naming the file and what it boots', () => {
    expect(() => machineFor(EM.AARCH64, '/x/livepatch-a.ko')).toThrow(
      expect.objectContaining({
        code: 'VERIFY_ARCH',
        message: '/x/livepatch-a.ko is built for aarch64; verify boots x86_64, s390x and ppc64le guests only',
      }),
    );
  });

  test('KVM only for a guest of the host’s own instruction set', () => {
    expect(kvmPossible(X86_64, 'x64')).toBe(true);
    expect(kvmPossible(S390X, 'x64')).toBe(false);
    expect(kvmPossible(S390X, 's390x')).toBe(true);
    expect(kvmPossible(X86_64, 'arm64')).toBe(false);
    // Node calls a ppc64le host ppc64.
    expect(kvmPossible(PPC64LE, 'ppc64')).toBe(true);
    expect(kvmPossible(PPC64LE, 'x64')).toBe(false);
  });

  (process.arch === 's390x' ? test.skip : test)(
    'on this host an s390x guest runs under TCG: auto without a probe, kvm refused',
    async () => {
      const inputs = { kernel: '/nonexistent', busybox: '/nonexistent', genInitCpio: '/nonexistent', machine: S390X };
      await expect(chooseAccelerator('auto', inputs)).resolves.toBe('tcg');
      await expect(chooseAccelerator('tcg', inputs)).resolves.toBe('tcg');
      await expect(chooseAccelerator('kvm', inputs)).rejects.toMatchObject({ code: 'VERIFY_NO_KVM' });
      // verify asks before it packs anything: one line saying what to do instead.
      expect(() => assertAcceleratorPossible('kvm', S390X)).toThrow(
        `--accel kvm cannot run s390x guests on this ${process.arch} host: use --accel tcg (or auto)`,
      );
      expect(() => assertAcceleratorPossible('auto', S390X)).not.toThrow();
    },
  );
});

describe("the machine of a module: its ELF header's e_machine", () => {
  test('x86_64, s390x and ppc64le objects, and a file that is not ELF', async () => {
    const x86 = await assemble(work.path, 'x86', '  .text\n  ret\n');
    const s390 = await assemble(work.path, 's390', '  .text\n  br %r14\n', 's390x-linux-gnu-as');
    const ppc = await assemble(work.path, 'ppc', '  .text\n  blr\n', 'powerpc64le-linux-gnu-as');
    expect((await machineOfModule(x86)).name).toBe('x86_64');
    expect((await machineOfModule(s390)).name).toBe('s390x');
    expect((await machineOfModule(ppc)).name).toBe('ppc64le');
    const text = path.join(work.path, 'text.ko');
    await writeFile(text, 'not a module\n');
    await expect(machineOfModule(text)).rejects.toMatchObject({
      code: 'VERIFY_INPUT',
      message: expect.stringMatching(/^\S+text\.ko is not a kernel module: .*not an ELF file/) as unknown,
    });
  });
});

describe('where each machine finds its tools', () => {
  test('the cache dir as scripts/fetch-busybox finds it: $KLPFORGE_CACHE, $XDG_CACHE_HOME/klpforge, ~/.cache/klpforge', () => {
    expect(cachedBusyboxPath('s390x', { KLPFORGE_CACHE: '/c' })).toBe('/c/busybox/s390x/busybox');
    expect(cachedBusyboxPath('s390x', { XDG_CACHE_HOME: '/x' })).toBe('/x/klpforge/busybox/s390x/busybox');
    expect(cachedBusyboxPath('s390x', {})).toBe(path.join(homedir(), '.cache/klpforge/busybox/s390x/busybox'));
  });

  // A static executable of the machine stands in for Debian's busybox; ppc64le's is Debian's ppc64el one.
  test.each([
    { machine: S390X, debianArch: 's390x', tools: 's390x-linux-gnu', start: 'svc 1' },
    { machine: PPC64LE, debianArch: 'ppc64el', tools: 'powerpc64le-linux-gnu', start: 'sc' },
  ])(
    "the $machine.name busybox comes from the cache under Debian's name ($debianArch), and its absence says to run scripts/fetch-busybox",
    async ({ machine, debianArch, tools, start }) => {
      const saved = process.env['KLPFORGE_CACHE'];
      const cache = path.join(work.path, `cache-${debianArch}`);
      process.env['KLPFORGE_CACHE'] = cache;
      try {
        await expect(findBusybox(machine)).rejects.toMatchObject({
          code: 'VERIFY_NO_BUSYBOX',
          message: `verify needs a statically linked ${debianArch} busybox for the ${machine.name} guest at ${cache}/busybox/${debianArch}/busybox: run scripts/fetch-busybox ${debianArch}`,
        });
        const obj = await assemble(work.path, `start-${debianArch}`, `  .globl _start\n_start:\n  ${start}\n`, `${tools}-as`);
        await mkdir(path.join(cache, 'busybox', debianArch), { recursive: true });
        const exe = path.join(cache, 'busybox', debianArch, 'busybox');
        await execa(`${tools}-ld`, ['-o', exe, obj]);
        await chmod(exe, 0o755);
        await expect(findBusybox(machine)).resolves.toBe(exe);
      } finally {
        if (saved === undefined) delete process.env['KLPFORGE_CACHE'];
        else process.env['KLPFORGE_CACHE'] = saved;
      }
    },
  );

  test('isStaticElf reads big-endian executables too', async () => {
    const obj = await assemble(work.path, 'be', '  .globl _start\n_start:\n  svc 1\n', 's390x-linux-gnu-as');
    const stat = path.join(work.path, 'be-static');
    const dyn = path.join(work.path, 'be-dynamic');
    await execa('s390x-linux-gnu-ld', ['-o', stat, obj]);
    await execa('s390x-linux-gnu-ld', ['-pie', '--dynamic-linker=/lib/ld64.so.1', '-o', dyn, obj]);
    expect(await isStaticElf(stat)).toBe(true);
    expect(await isStaticElf(dyn)).toBe(false);
  });

  test("gen_init_cpio is looked for in the image's build dir, and the message names the machine's image path", async () => {
    const err = (m = X86_64) => findGenInitCpio('/b/arch/x/boot/bzImage', undefined, m);
    await expect(err()).rejects.toMatchObject({
      message: expect.stringContaining(
        '(looked at /b/usr/gen_init_cpio): pass the bzImage from its build directory (BUILD/arch/x86/boot/bzImage)',
      ) as unknown,
    });
    await expect(err(S390X)).rejects.toMatchObject({
      message: expect.stringContaining('(BUILD/arch/s390/boot/bzImage) or --modules BUILD') as unknown,
    });
    // ppc64le boots the build dir's own vmlinux: gen_init_cpio is beside it, no directories up.
    const build = path.join(work.path, 'ppc-build');
    await mkdir(path.join(build, 'usr'), { recursive: true });
    await writeFile(path.join(build, 'usr/gen_init_cpio'), '', { mode: 0o755 });
    await expect(findGenInitCpio(path.join(build, 'vmlinux'), undefined, PPC64LE)).resolves.toBe(path.join(build, 'usr/gen_init_cpio'));
    await expect(err(PPC64LE)).rejects.toMatchObject({
      message: expect.stringContaining(
        '(looked at /b/arch/x/boot/usr/gen_init_cpio): pass the bzImage from its build directory (BUILD/vmlinux)',
      ) as unknown,
    });
  });
});
