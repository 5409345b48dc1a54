import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { objectOwners } from '../../src/orchestrator/kbuild/object-owner.js';

describe('objectOwners: what each object of a kernel build is linked into', () => {
  it("gives a module the objects it builds from another directory (kvm.ko's virt/kvm files), by their normalised paths", async () => {
    const tmp = await tmpDir({ unsafeCleanup: true });
    try {
      const b = tmp.path;
      await mkdir(path.join(b, 'arch/x86/kvm'), { recursive: true });
      await mkdir(path.join(b, 'fs'), { recursive: true });
      // As Linux 6.1's kbuild writes them.
      await writeFile(path.join(b, 'modules.order'), 'fs/binfmt_misc.o\narch/x86/kvm/kvm.o\n');
      await writeFile(path.join(b, 'arch/x86/kvm/kvm.mod'), 'arch/x86/kvm/../../../virt/kvm/kvm_main.o\narch/x86/kvm/x86.o\n');
      const owner = await objectOwners(b);
      expect(owner('virt/kvm/kvm_main.o')).toEqual({ kind: 'module', name: 'kvm', ko: 'arch/x86/kvm/kvm.ko' });
      expect(owner('arch/x86/kvm/x86.o')).toEqual({ kind: 'module', name: 'kvm', ko: 'arch/x86/kvm/kvm.ko' });
      // No .mod file: the module is its one object.
      expect(owner('fs/binfmt_misc.o')).toEqual({ kind: 'module', name: 'binfmt_misc', ko: 'fs/binfmt_misc.ko' });
      expect(owner('fs/proc/cmdline.o')).toEqual({ kind: 'vmlinux' });
    } finally {
      await tmp.cleanup();
    }
  });
});
