import { objectForCmdFile, parseKbuildCmd, unescapeMakeCmd } from '../../src/orchestrator/kbuild/kbuild-cmd.js';
import { isBuildInput } from '../../src/orchestrator/kbuild/affected.js';
import { livepatchability } from '../../src/orchestrator/kbuild/livepatchable.js';

// Shortened from real Linux 6.1 .cmd files of an out-of-tree build (srctree /src/linux).
const CMDLINE_O_CMD = `cmd_fs/proc/cmdline.o := gcc -Wp,-MMD,fs/proc/.cmdline.o.d -nostdinc -I/src/linux/arch/x86/include -I./arch/x86/include/generated -I/src/linux/include -I./include -include /src/linux/include/linux/kconfig.h -D__KERNEL__ -fmacro-prefix-map=/src/linux/= -Wall -Os -pg -mrecord-mcount -mfentry -I /src/linux/fs/proc -I ./fs/proc    -DKBUILD_MODFILE='"fs/proc/proc"' -DKBUILD_BASENAME='"cmdline"' -DKBUILD_MODNAME='"proc"' -D__KBUILD_MODNAME=kmod_proc -c -o fs/proc/cmdline.o /src/linux/fs/proc/cmdline.c   ; ./tools/objtool/objtool --hacks=jump_label --hacks=noinstr --orc --retpoline --rethunk --static-call --uaccess   fs/proc/cmdline.o

source_fs/proc/cmdline.o := /src/linux/fs/proc/cmdline.c

deps_fs/proc/cmdline.o := \\
  /src/linux/include/linux/compiler-version.h \\
    $(wildcard include/config/CC_VERSION_TEXT) \\
  /src/linux/include/linux/kconfig.h \\
    $(wildcard include/config/CPU_BIG_ENDIAN) \\
  /src/linux/include/linux/fs.h \\
  arch/x86/include/generated/asm/rwonce.h \\
  /src/linux/include/linux/seq_file.h \\

fs/proc/cmdline.o: $(deps_fs/proc/cmdline.o)

$(deps_fs/proc/cmdline.o):

fs/proc/cmdline.o: $(wildcard ./tools/objtool/objtool)
`;

const ENTRY_O_CMD = `cmd_arch/x86/entry/entry_64.o := gcc -Wp,-MMD,arch/x86/entry/.entry_64.o.d -nostdinc -I/src/linux/include -D__KERNEL__ -D__ASSEMBLY__ -c -o arch/x86/entry/entry_64.o /src/linux/arch/x86/entry/entry_64.S  ; ./tools/objtool/objtool --orc   arch/x86/entry/entry_64.o

source_arch/x86/entry/entry_64.o := /src/linux/arch/x86/entry/entry_64.S

deps_arch/x86/entry/entry_64.o := \\
  /src/linux/include/linux/linkage.h \\
  /src/linux/arch/x86/include/asm/unwind_hints.h

arch/x86/entry/entry_64.o: $(deps_arch/x86/entry/entry_64.o)
`;

const VMLINUX_O_CMD = `cmd_vmlinux.o := ld -m elf_x86_64 -z noexecstack -r -o vmlinux.o  --whole-archive vmlinux.a --no-whole-archive --start-group  --end-group 
`;

describe('parseKbuildCmd', () => {
  it("reads an object a module builds from another directory (kvm.ko's virt/kvm files) under its normalised path, and replays it there", () => {
    const spelled = 'arch/x86/kvm/../../../virt/kvm';
    const text = CMDLINE_O_CMD.replaceAll('fs/proc/', `${spelled}/`).replaceAll('cmdline', 'kvm_main');
    const r = parseKbuildCmd(text, 'virt/kvm/kvm_main.o', '/b/virt/kvm/.kvm_main.o.cmd');
    expect(r.kind).toBe('compile');
    if (r.kind !== 'compile') return;
    expect(r.record.object).toBe('virt/kvm/kvm_main.o');
    expect(r.record.source).toBe(`/src/linux/${spelled}/kvm_main.c`);
    expect(r.record.deps).toContain('/src/linux/include/linux/fs.h');
    expect(r.record.command).toContain('-c -o virt/kvm/kvm_main.o ');
    expect(r.record.command).toContain('-Wp,-MMD,virt/kvm/.kvm_main.o.d ');
    expect(r.record.command).not.toMatch(/(^|[ ,])arch\/x86\/kvm\/\.\./);
    // The source keeps its spelling: __FILE__ (in WARN and BUG records) expands to it, as in the original object.
    expect(r.record.command).toContain(`/src/linux/${spelled}/kvm_main.c`);
  });

  test('reads the object, its exact command (objtool pass included), source and dependencies', () => {
    const parsed = parseKbuildCmd(CMDLINE_O_CMD, 'fs/proc/cmdline.o', 'fs/proc/.cmdline.o.cmd');
    if (parsed.kind !== 'compile') throw new Error('expected a compile');
    const r = parsed.record;
    expect(r.object).toBe('fs/proc/cmdline.o');
    expect(r.command).toMatch(/^gcc -Wp,-MMD,fs\/proc\/\.cmdline\.o\.d /);
    expect(r.command).toMatch(
      /-c -o fs\/proc\/cmdline\.o \/src\/linux\/fs\/proc\/cmdline\.c +; \.\/tools\/objtool\/objtool .* fs\/proc\/cmdline\.o$/,
    );
    expect(r.command).toContain(`-DKBUILD_MODFILE='"fs/proc/proc"'`);
    expect(r.source).toBe('/src/linux/fs/proc/cmdline.c');
    expect(r.deps).toEqual([
      '/src/linux/include/linux/compiler-version.h',
      '/src/linux/include/linux/kconfig.h',
      '/src/linux/include/linux/fs.h',
      'arch/x86/include/generated/asm/rwonce.h',
      '/src/linux/include/linux/seq_file.h',
    ]);
  });

  test('a dependency list whose last line has no trailing backslash ends there', () => {
    const parsed = parseKbuildCmd(ENTRY_O_CMD, 'arch/x86/entry/entry_64.o', 'x');
    expect(parsed.kind === 'compile' && parsed.record.deps).toEqual([
      '/src/linux/include/linux/linkage.h',
      '/src/linux/arch/x86/include/asm/unwind_hints.h',
    ]);
  });

  test('a link record (no source_ line) is not a compile', () => {
    expect(parseKbuildCmd(VMLINUX_O_CMD, 'vmlinux.o', 'x').kind).toBe('other');
  });

  test('tools/ builds record absolute object paths: not a compile of this tree', () => {
    const text =
      'cmd_/b/tools/objtool/check.o := gcc -c -o /b/tools/objtool/check.o check.c\n\nsource_/b/tools/objtool/check.o := check.c\n';
    expect(parseKbuildCmd(text, 'tools/objtool/check.o', 'x').kind).toBe('other');
  });

  test("make's escapes are undone: $$ is $, $(pound) is #, and $$(pound) stays literal", () => {
    expect(unescapeMakeCmd(`-D"BUILD_STR(s)=$(pound)s" -DX='$$HOME' -DY=$$(pound)`)).toBe(`-D"BUILD_STR(s)=#s" -DX='$HOME' -DY=$(pound)`);
  });
});

describe('objectForCmdFile', () => {
  test('maps dir/.NAME.o.cmd to dir/NAME.o, top-level files too', () => {
    expect(objectForCmdFile('fs/proc/.cmdline.o.cmd')).toBe('fs/proc/cmdline.o');
    expect(objectForCmdFile('.vmlinux.o.cmd')).toBe('vmlinux.o');
    expect(objectForCmdFile('fs/.binfmt_misc.ko.cmd')).toBeNull();
    expect(objectForCmdFile('fs/.binfmt_misc.mod.o.cmd')).toBe('fs/binfmt_misc.mod.o');
  });
});

describe('livepatchability', () => {
  const kernelCmd = 'gcc -D__KERNEL__ -c -o x.o x.c';
  test('kernel C objects, built in or modules, can be livepatched', () => {
    expect(livepatchability('fs/proc/cmdline.o', '/s/fs/proc/cmdline.c', kernelCmd)).toEqual({ livepatchable: true });
    expect(livepatchability('fs/binfmt_misc.o', '/s/fs/binfmt_misc.c', `${kernelCmd} -DMODULE`)).toEqual({ livepatchable: true });
  });
  test('assembly, vdso, boot, realmode code, host tools and modpost glue cannot', () => {
    const reason = (o: string, s: string, c = kernelCmd): string | undefined => {
      const l = livepatchability(o, s, c);
      return l.livepatchable ? undefined : l.reason;
    };
    expect(reason('arch/x86/entry/entry_64.o', '/s/arch/x86/entry/entry_64.S')).toBe('assembly');
    expect(reason('arch/x86/entry/vdso/vclock_gettime.o', '/s/arch/x86/entry/vdso/vclock_gettime.c')).toBe('vdso');
    expect(reason('arch/x86/boot/compressed/misc.o', '/s/arch/x86/boot/compressed/misc.c')).toBe('boot');
    expect(reason('arch/x86/realmode/rm/wakemain.o', '/s/arch/x86/realmode/rm/wakemain.c')).toBe('realmode');
    expect(reason('scripts/mod/modpost.o', '/s/scripts/mod/modpost.c', 'gcc -O2 -c -o scripts/mod/modpost.o x.c')).toBe('host-tool');
    expect(reason('fs/binfmt_misc.mod.o', 'fs/binfmt_misc.mod.c')).toBe('modpost-glue');
  });
});

describe('isBuildInput', () => {
  test('Makefiles, Kbuild, Kconfig, syscall tables and linker scripts steer the build; sources and docs do not', () => {
    for (const f of [
      'Makefile',
      'fs/proc/Makefile',
      'arch/x86/Kconfig.cpu',
      'fs/Kbuild',
      'arch/x86/entry/syscalls/syscall_64.tbl',
      'arch/x86/kernel/vmlinux.lds.S',
    ]) {
      expect([f, isBuildInput(f)]).toEqual([f, true]);
    }
    for (const f of ['fs/proc/cmdline.c', 'include/linux/fs.h', 'Documentation/filesystems/proc.rst', 'fs/Makefile.c/x.c']) {
      expect([f, isBuildInput(f)]).toEqual([f, false]);
    }
  });
});
