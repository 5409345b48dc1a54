import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { archRules } from '../../src/diff/arch.js';
import { readDirectives } from '../../src/diff/rules/kpatch-macros.js';
import { ObjectView } from '../../src/diff/model/object-view.js';
import { EM, readElfFile } from '../../src/elf/index.js';
import { fixtureKernel, REPO_ROOT } from '../helpers/kernel.js';

const KPATCH_HEADERS = path.join(REPO_ROOT, 'kernel-headers');

/**
 * Every directive of kpatch-macros.h, used the way kpatch's own test patches
 * use them (macro-callbacks: callbacks taking a patch_object and reading
 * obj->mod->name and obj->mod->state; macro-printk; ignore, force). Built as
 * an object of an out-of-tree module: the same compiler and flags as the
 * kernel's own objects.
 */
const DIRECTIVES_SOURCE = String.raw`// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/static_call.h>
#include "kpatch-macros.h"

static int klpforge_count(int x)
{
	static int klpforge_calls;

	klpforge_calls++;
	return x + klpforge_calls;
}
KPATCH_IGNORE_STATIC("klpforge_calls");

static noinline int klpforge_ignored(int x)
{
	WARN_ON(x < 0);
	return x * 2;
}
KPATCH_IGNORE_FUNCTION(klpforge_ignored);

static noinline notrace int klpforge_forced(int x)
{
	return x + 3;
}
KPATCH_FORCE_UNSAFE(klpforge_forced);

KPATCH_IGNORE_SECTION(".klpforge.side_effects");

static const char *const klpforge_states[] = {
	[MODULE_STATE_LIVE] = "live",
	[MODULE_STATE_COMING] = "coming",
	[MODULE_STATE_GOING] = "going",
	[MODULE_STATE_UNFORMED] = "unformed",
};

static void klpforge_report(const char *callback, patch_object *obj)
{
	if (obj->mod)
		pr_info("%s: %s is %s\n", callback, obj->mod->name, klpforge_states[obj->mod->state]);
	else
		pr_info("%s: vmlinux\n", callback);
}

static int klpforge_pre_patch(patch_object *obj)
{
	klpforge_report(__func__, obj);
	return 0;
}
KPATCH_PRE_PATCH_CALLBACK(klpforge_pre_patch);

static void klpforge_post_patch(patch_object *obj)
{
	klpforge_report(__func__, obj);
}
KPATCH_POST_PATCH_CALLBACK(klpforge_post_patch);

static void klpforge_pre_unpatch(patch_object *obj)
{
	klpforge_report(__func__, obj);
}
KPATCH_PRE_UNPATCH_CALLBACK(klpforge_pre_unpatch);

static void klpforge_post_unpatch(patch_object *obj)
{
	klpforge_report(__func__, obj);
}
/* No semicolon: kpatch's macros carry their own. */
KPATCH_POST_UNPATCH_CALLBACK(klpforge_post_unpatch)

static int klpforge_double(int x)
{
	return 2 * x;
}
DEFINE_STATIC_CALL(klpforge_call, klpforge_double);

/* kpatch-macros.h brings kpatch-syscall.h with it, as kpatch's does. */
KPATCH_SYSCALL_DEFINE1(klpforge_test, int, x)
{
	return x + 1;
}

static int __init klpforge_init(void)
{
	KPATCH_PRINTK("klpforge: %d\n", klpforge_count(1));
	KPATCH_PRINTK_DEFERRED("klpforge: %d\n",
		KPATCH_STATIC_CALL(klpforge_call)(klpforge_ignored(2) + klpforge_forced(1)));
	return 0;
}
module_init(klpforge_init);
MODULE_LICENSE("GPL");
`;

/** A callback of the signature older klpforge fixtures used: kpatch's header refuses it too. */
const VOID_CALLBACK_SOURCE = String.raw`// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include "kpatch-macros.h"

static int klpforge_pre_patch(void *obj)
{
	return 0;
}
KPATCH_PRE_PATCH_CALLBACK(klpforge_pre_patch);
MODULE_LICENSE("GPL");
`;

/** Compiles one C file as an object of an out-of-tree module of the fixture kernel, kpatch-macros.h on the include path. */
async function compileObject(work: string, name: string, source: string, extraFlags: string[] = []) {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `${name}.c`), source);
  await writeFile(path.join(dir, 'Kbuild'), `obj-m += ${name}.o\n`);
  const kcflags = [`-I${KPATCH_HEADERS}`, ...extraFlags].join(' ');
  // The object alone, not the .ko: modpost would want printk_deferred exported, which a livepatch reaches through a klp relocation.
  const r = await execa('make', ['-C', fixtureKernel().plain, `M=${dir}`, `KCFLAGS=${kcflags}`, `${name}.o`], {
    reject: false,
    all: true,
    stdin: 'ignore',
  });
  return { exitCode: r.exitCode, output: r.all ?? '', object: path.join(dir, `${name}.o`) };
}

describe('kpatch-macros.h: patches written for kpatch compile on the fixture kernel, and the differ reads back every directive', () => {
  let tmp: DirectoryResult;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it.each<[string, string[]]>([
    ["the kernel's own flags", []],
    ['-ffunction-sections -fdata-sections, as klpforge builds patched objects', ['-ffunction-sections', '-fdata-sections']],
  ])(
    'patch_object callbacks, ignored functions, sections and statics, forced functions are read back (%s)',
    async (_label, flags) => {
      const name = flags.length ? 'kpatch_directives_fs' : 'kpatch_directives';
      const built = await compileObject(tmp.path, name, DIRECTIVES_SOURCE, flags);
      expect({ exitCode: built.exitCode, errors: built.output.split('\n').filter((l) => /error|warning:/.test(l)) }).toEqual({
        exitCode: 0,
        errors: [],
      });

      const obj = await readElfFile(built.object);
      const view = new ObjectView(obj, archRules(EM.X86_64)!, built.object);
      const d = readDirectives(view);

      expect(d.callbacks.map((c) => `${c.kind}:${c.function}`).sort()).toEqual([
        'post_patch:klpforge_post_patch',
        'post_unpatch:klpforge_post_unpatch',
        'pre_patch:klpforge_pre_patch',
        'pre_unpatch:klpforge_pre_unpatch',
      ]);
      expect([...d.ignoredFunctions]).toEqual(['klpforge_ignored']);
      expect([...d.forcedFunctions]).toEqual(['klpforge_forced']);
      expect([...d.ignoredSections]).toEqual(['.klpforge.side_effects']);
      expect([...d.ignoredStatics]).toEqual(['klpforge_calls']);
      // The name given is the source's: gcc's symbol carries a `.N` the differ removes.
      expect(obj.symbols.some((s) => /^klpforge_calls\.\d+$/.test(s.name))).toBe(true);

      // Each directive section, and its relocations, is metadata: never compared, never included.
      const sections = [
        '.kpatch.ignore.functions',
        '.kpatch.ignore.sections',
        '.kpatch.ignore.statics',
        '.kpatch.force',
        '.kpatch.callbacks.pre_patch',
        '.kpatch.callbacks.post_patch',
        '.kpatch.callbacks.pre_unpatch',
        '.kpatch.callbacks.post_unpatch',
      ];
      for (const s of sections) {
        const idx = obj.findSection(s);
        expect({ s, present: idx !== undefined }).toEqual({ s, present: true });
        expect(d.directiveSections.has(idx!)).toBe(true);
        for (const r of obj.relocationsFor(idx!)) expect(d.directiveSections.has(r)).toBe(true);
      }
      // Callback entries are { fn, objname } with objname left NULL: one relocation each, at offset 0.
      for (const kind of ['pre_patch', 'post_patch', 'pre_unpatch', 'post_unpatch']) {
        const idx = obj.findSection(`.kpatch.callbacks.${kind}`)!;
        const relocs = obj
          .relocationsFor(idx)
          .map((r) => obj.section(r).body)
          .flatMap((b) => (b.kind === 'relocations' ? [...b.table.offsets] : []));
        expect({ kind, relocs }).toEqual({ kind, relocs: [0n] });
      }
    },
    120_000,
  );

  it("a callback that does not take a patch_object is a compile error, as with kpatch's header", async () => {
    const built = await compileObject(tmp.path, 'kpatch_void_callback', VOID_CALLBACK_SOURCE);
    expect(built.exitCode).not.toBe(0);
    expect(built.output).toMatch(/incompatible-pointer-types/);
  }, 120_000);
});
