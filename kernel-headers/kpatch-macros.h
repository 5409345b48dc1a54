/* SPDX-License-Identifier: GPL-2.0 */
/*
 * klpforge's implementation of kpatch's patch-author API, so patches written
 * for kpatch-build build unchanged: klpforge puts this directory on the
 * include path of the patched build. The differ (src/diff/rules/kpatch-macros.ts)
 * reads the sections these macros emit; none of them ends up in the
 * livepatch module as data. Every entry of those sections is one pointer at
 * offset 0 (callbacks: { fn, objname }, the objname left NULL: the generator
 * knows which object each patched file belongs to).
 *
 * klpforge builds livepatch (klp) modules only, so this is the livepatch
 * flavour of kpatch's header: callbacks take a struct klp_object.
 *
 * Directives go at file scope, after the function they name is declared;
 * each macro brings its own semicolon, so `KPATCH_IGNORE_FUNCTION(fn);` and
 * `KPATCH_IGNORE_FUNCTION(fn)` are both fine.
 */
#ifndef __KPATCH_MACROS_H_
#define __KPATCH_MACROS_H_

#include <linux/compiler.h>
#include <linux/jiffies.h>
#include <linux/livepatch.h>
#include <linux/printk.h>
#include <linux/version.h>
/* kpatch's header brings KPATCH_SYSCALL_DEFINEn with it: patches may rely on that. */
#include "kpatch-syscall.h"

/* __section() took a bare token before 5.10 and takes a string since. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
# define __klpforge_section(s) __section(s)
#else
# define __klpforge_section(s) __section(#s)
#endif

/*
 * Ignoring side effects
 */

/*
 * KPATCH_IGNORE_SECTION("name"): changes in section `name` are side effects
 * of the patch, not part of it (for instance a section that does not follow
 * -ffunction-sections, so no function owns it).
 */
#define KPATCH_IGNORE_SECTION(_sec) \
	char *__UNIQUE_ID(kpatch_ignore_section_) __klpforge_section(.kpatch.ignore.sections) = _sec;

/*
 * KPATCH_IGNORE_FUNCTION(fn): changes to `fn` are side effects (a WARN's
 * line number that moved, say): `fn` is not patched.
 */
#define KPATCH_IGNORE_FUNCTION(_fn) \
	void *__kpatch_ignore_func_##_fn __klpforge_section(.kpatch.ignore.functions) = _fn;

/*
 * KPATCH_IGNORE_STATIC("name"): the static local variable `name` (as the
 * source spells it, without gcc's `.N` suffix) may lose its references or
 * be left without a twin: the patch no longer needs the state it kept. Every
 * static local of that name in the file is covered. A static local cannot be
 * named at file scope, hence the string. (Not in upstream kpatch: openEuler's
 * kpatch added it; the entry is a pointer to the name, like
 * KPATCH_IGNORE_SECTION's.)
 */
#define KPATCH_IGNORE_STATIC(_static) \
	char *__UNIQUE_ID(kpatch_ignore_static_) __klpforge_section(.kpatch.ignore.statics) = _static;

/*
 * KPATCH_FORCE_UNSAFE(fn): patch `fn` even where the differ would refuse it
 * (no ftrace entry, __init). Only when both the old and the new `fn` may run
 * at the same time, safely: you own the consequences.
 */
#define KPATCH_FORCE_UNSAFE(_fn) \
	void *__kpatch_force_func_##_fn __klpforge_section(.kpatch.force) = _fn;

/*
 * Callbacks
 *
 * Run by the livepatch core around (un)patching of the object the file
 * belongs to (vmlinux or a module): the pre-patch callback may refuse the
 * patch by returning non-zero, the others return nothing. `obj->mod` is the
 * module being patched, NULL for vmlinux. One callback of each kind per
 * object, as the livepatch core has one slot for each.
 *
 *	static int my_pre_patch(patch_object *obj) { ...; return 0; }
 *	KPATCH_PRE_PATCH_CALLBACK(my_pre_patch);
 */
typedef struct klp_object patch_object;

typedef int (*kpatch_pre_patch_call_t)(patch_object *obj);
typedef void (*kpatch_post_patch_call_t)(patch_object *obj);
typedef void (*kpatch_pre_unpatch_call_t)(patch_object *obj);
typedef void (*kpatch_post_unpatch_call_t)(patch_object *obj);

/* The differ reads `fn` (offset 0) only; `objname` stays NULL. */
struct kpatch_pre_patch_callback { kpatch_pre_patch_call_t fn; char *objname; };
struct kpatch_post_patch_callback { kpatch_post_patch_call_t fn; char *objname; };
struct kpatch_pre_unpatch_callback { kpatch_pre_unpatch_call_t fn; char *objname; };
struct kpatch_post_unpatch_callback { kpatch_post_unpatch_call_t fn; char *objname; };

/*
 * The inline function makes a callback of the wrong signature a compile error
 * on the macro's own line (the kernel builds with
 * -Werror=incompatible-pointer-types), the static entry its table.
 */
#define __KPATCH_CALLBACK(_kind, _type, _fn) \
	static inline _type __kpatch_##_kind##_typecheck(void) { return _fn; } \
	static struct kpatch_##_kind##_callback kpatch_##_kind##_data __klpforge_section(.kpatch.callbacks._kind) __used = { \
		.fn = _fn, .objname = NULL, \
	};

#define KPATCH_PRE_PATCH_CALLBACK(_fn) __KPATCH_CALLBACK(pre_patch, kpatch_pre_patch_call_t, _fn)
#define KPATCH_POST_PATCH_CALLBACK(_fn) __KPATCH_CALLBACK(post_patch, kpatch_post_patch_call_t, _fn)
#define KPATCH_PRE_UNPATCH_CALLBACK(_fn) __KPATCH_CALLBACK(pre_unpatch, kpatch_pre_unpatch_call_t, _fn)
#define KPATCH_POST_UNPATCH_CALLBACK(_fn) __KPATCH_CALLBACK(post_unpatch, kpatch_post_unpatch_call_t, _fn)

/*
 * Code helpers
 */

/*
 * printk() is __cold: gcc treats the path that calls it as unlikely, and may
 * move the code around it to .text.unlikely or stop inlining what it calls,
 * so a debugging printk added by a patch changes functions it does not touch.
 * Behind a test of a volatile (jiffies) gcc cannot fold, the call is a branch
 * of its own and the surrounding path stays as it was.
 */
#define __klpforge_uncold(_call) ({ if (jiffies != 0) _call; })

#define KPATCH_PRINTK(_fmt, ...) __klpforge_uncold(printk(_fmt, ## __VA_ARGS__))
/* The same, deferred: safe where printk could deadlock (under the runqueue lock). */
#define KPATCH_PRINTK_DEFERRED(_fmt, ...) __klpforge_uncold(printk_deferred(_fmt, ## __VA_ARGS__))

/*
 * KPATCH_STATIC_CALL(name)(args): static_call(name)(args) as a plain indirect
 * call through the key's current target, for a static call whose key lives
 * in a module (a livepatch cannot patch call sites of another module's key).
 */
#define KPATCH_STATIC_CALL(name) \
	((typeof(&STATIC_CALL_TRAMP(name)))READ_ONCE(STATIC_CALL_KEY(name).func))

#endif /* __KPATCH_MACROS_H_ */
