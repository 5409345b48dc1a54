import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir } from 'tmp-promise';
import { isStaticElf } from '../../src/verify/boot/host-tools.js';
import { cpioList, findKernelModules, isSafeGuestPath, type GuestFile } from '../../src/verify/boot/initramfs.js';
import { moduleNameFromFile } from '../../src/verify/guest/steps.js';

describe('cpioList (gen_init_cpio input)', () => {
  const files: GuestFile[] = [
    { guestPath: '/bin/busybox', source: { file: '/bin/busybox' }, mode: 0o755 },
    { guestPath: '/init', source: { text: '#!/bin/busybox sh\n' }, mode: 0o755 },
    { guestPath: '/modules/fs/binfmt_misc.ko', source: { file: '/b/fs/binfmt_misc.ko' }, mode: 0o644 },
  ];
  const sources = new Map([
    ['/bin/busybox', '/w/stage/0-busybox'],
    ['/init', '/w/stage/1-init'],
    ['/modules/fs/binfmt_misc.ko', '/w/stage/2-binfmt_misc.ko'],
  ]);
  const list = cpioList(files, sources).split('\n');

  test("creates every parent directory once, before the files, and /dev/console for init's stdio", () => {
    expect(list.filter((l) => l.startsWith('dir '))).toEqual([
      'dir /bin 0755 0 0',
      'dir /dev 0755 0 0',
      'dir /modules 0755 0 0',
      'dir /modules/fs 0755 0 0',
      'dir /proc 0755 0 0',
      'dir /sys 0755 0 0',
      'dir /tmp 1777 0 0',
    ]);
    expect(list).toContain('nod /dev/console 0600 0 0 c 5 1');
    expect(list.findIndex((l) => l.startsWith('file '))).toBeGreaterThan(list.findIndex((l) => l.startsWith('nod ')));
  });

  test('names each file with its staged host path and octal mode', () => {
    expect(list).toContain('file /init /w/stage/1-init 0755 0 0');
    expect(list).toContain('file /modules/fs/binfmt_misc.ko /w/stage/2-binfmt_misc.ko 0644 0 0');
  });

  test('guest paths with white space or .. are refused: gen_init_cpio would split or escape them', () => {
    expect(isSafeGuestPath('/modules/fs/binfmt_misc.ko')).toBe(true);
    expect(isSafeGuestPath('/modules/my module.ko')).toBe(false);
    expect(isSafeGuestPath('/modules/../init')).toBe(false);
    expect(isSafeGuestPath('relative.ko')).toBe(false);
  });
});

describe('findKernelModules', () => {
  test("finds .ko files at any depth, sorted, without following the build tree's symlinks", async () => {
    const d = await dir({ unsafeCleanup: true });
    try {
      await mkdir(path.join(d.path, 'fs'), { recursive: true });
      await mkdir(path.join(d.path, 'samples/livepatch'), { recursive: true });
      await writeFile(path.join(d.path, 'fs/binfmt_misc.ko'), '');
      await writeFile(path.join(d.path, 'fs/binfmt_misc.o'), '');
      await writeFile(path.join(d.path, 'samples/livepatch/livepatch-sample.ko'), '');
      await symlink(d.path, path.join(d.path, 'source')); // like BUILD/source -> the source tree: a loop here
      expect(await findKernelModules(d.path)).toEqual(['fs/binfmt_misc.ko', 'samples/livepatch/livepatch-sample.ko']);
    } finally {
      await d.cleanup();
    }
  });
});

describe('moduleNameFromFile', () => {
  test('turns kbuild file names into the module name sysfs uses', () => {
    expect(moduleNameFromFile('/x/samples/livepatch/livepatch-sample.ko')).toBe('livepatch_sample');
    expect(moduleNameFromFile('klpforge-broken-livepatch.ko')).toBe('klpforge_broken_livepatch');
  });
  test('refuses names that are not a module file', () => {
    expect(moduleNameFromFile('livepatch-sample.o')).toBeNull();
    expect(moduleNameFromFile('bad name.ko')).toBeNull();
    expect(moduleNameFromFile('.ko')).toBeNull();
  });
});

describe('isStaticElf', () => {
  test("busybox-static's /bin/busybox has no program interpreter; a dynamic executable has one", async () => {
    expect(await isStaticElf('/bin/busybox')).toBe(true);
    expect(await isStaticElf(process.execPath)).toBe(false);
  });
});
