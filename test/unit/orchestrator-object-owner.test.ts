import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import type { BuildIndex, IndexedObject } from '../../src/orchestrator/kbuild/build-index.js';
import { objectOwners, recordedObjectOwners } from '../../src/orchestrator/kbuild/object-owner.js';

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

  it("in a tree where only some objects were compiled, takes the module from the recorded -DMODULE/KBUILD_MODNAME and its file from the running kernel's modules.order", async () => {
    const tmp = await tmpDir({ unsafeCleanup: true });
    try {
      // As an installed kernel has it: lib/modules/RELEASE/modules.order, paths under kernel/.
      const order = path.join(tmp.path, 'modules.order');
      await writeFile(order, 'kernel/fs/nfsd/nfsd.ko\nkernel/drivers/input/misc/pcspkr.ko\nkernel/arch/x86/kvm/kvm-intel.ko\n');
      const record = (command: string) => ({ command }) as unknown as IndexedObject;
      const index = {
        objects: new Map([
          [
            'fs/nfsd/nfs4state.o',
            record(
              'gcc -DMODULE -DKBUILD_BASENAME=\'"nfs4state"\' -DKBUILD_MODNAME=\'"nfsd"\' -D__KBUILD_MODNAME=kmod_nfsd -c -o fs/nfsd/nfs4state.o',
            ),
          ],
          ['arch/x86/kvm/vmx/vmx.o', record('gcc -DMODULE -DKBUILD_MODNAME=\'"kvm_intel"\' -c -o arch/x86/kvm/vmx/vmx.o')],
          ['fs/proc/cmdline.o', record('gcc -DKBUILD_MODNAME=\'"cmdline"\' -c -o fs/proc/cmdline.o')],
        ]),
      } as unknown as BuildIndex;
      const owner = await recordedObjectOwners(index, order);
      expect(owner('fs/nfsd/nfs4state.o')).toEqual({ kind: 'module', name: 'nfsd', ko: 'fs/nfsd/nfsd.ko' });
      // kvm-intel.ko's name has a dash; KBUILD_MODNAME has the underscore.
      expect(owner('arch/x86/kvm/vmx/vmx.o')).toEqual({ kind: 'module', name: 'kvm_intel', ko: 'arch/x86/kvm/kvm-intel.ko' });
      // Built in: KBUILD_MODNAME without -DMODULE.
      expect(owner('fs/proc/cmdline.o')).toEqual({ kind: 'vmlinux' });
    } finally {
      await tmp.cleanup();
    }
  });
});
