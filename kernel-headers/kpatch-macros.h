/* SPDX-License-Identifier: GPL-2.0 */
/*
 * klpforge's implementation of kpatch's patch-author API, so patches written
 * for kpatch-build build unchanged: klpforge puts this directory on the
 * include path of the patched build. The differ reads the sections these
 * macros emit; none of them ends up in the livepatch module as data.
 */
#ifndef __KPATCH_MACROS_H_
#define __KPATCH_MACROS_H_

#include <linux/compiler.h>
#include <linux/jiffies.h>
#include <linux/version.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
# define __klpforge_section(s) __section(s)
#else
# define __klpforge_section(s) __section(#s)
#endif

/* Changes in section _sec (a string) are side effects to ignore. */
#define KPATCH_IGNORE_SECTION(_sec) \
	char *__UNIQUE_ID(kpatch_ignore_section_) __klpforge_section(.kpatch.ignore.sections) = _sec;

/* Changes to function _fn are side effects to ignore: it is not patched. */
#define KPATCH_IGNORE_FUNCTION(_fn) \
	void *__kpatch_ignore_func_##_fn __klpforge_section(.kpatch.ignore.functions) = _fn;

/* Patch _fn even where the differ would refuse (no ftrace entry, __init). */
#define KPATCH_FORCE_UNSAFE(_fn) \
	void *__kpatch_force_func_##_fn __klpforge_section(.kpatch.force) = _fn;

/*
 * Callbacks run by the livepatch core around (un)patching of the object this
 * file belongs to (vmlinux or a module). Entry layout: { callback, objname }.
 */
typedef int (*kpatch_pre_patch_call_t)(void *klp_obj);
typedef void (*kpatch_post_patch_call_t)(void *klp_obj);
typedef void (*kpatch_pre_unpatch_call_t)(void *klp_obj);
typedef void (*kpatch_post_unpatch_call_t)(void *klp_obj);

struct kpatch_pre_patch_callback { kpatch_pre_patch_call_t callback; char *objname; };
struct kpatch_post_patch_callback { kpatch_post_patch_call_t callback; char *objname; };
struct kpatch_pre_unpatch_callback { kpatch_pre_unpatch_call_t callback; char *objname; };
struct kpatch_post_unpatch_callback { kpatch_post_unpatch_call_t callback; char *objname; };

#define __KPATCH_CALLBACK(_kind, _type, _fn) \
	static inline _type __kpatch_##_kind##_typecheck(void) { return _fn; } \
	static struct kpatch_##_kind##_callback kpatch_##_kind##_data __klpforge_section(.kpatch.callbacks._kind) __used = { \
		.callback = _fn, .objname = NULL, \
	};

#define KPATCH_PRE_PATCH_CALLBACK(_fn) __KPATCH_CALLBACK(pre_patch, kpatch_pre_patch_call_t, _fn)
#define KPATCH_POST_PATCH_CALLBACK(_fn) __KPATCH_CALLBACK(post_patch, kpatch_post_patch_call_t, _fn)
#define KPATCH_PRE_UNPATCH_CALLBACK(_fn) __KPATCH_CALLBACK(pre_unpatch, kpatch_pre_unpatch_call_t, _fn)
#define KPATCH_POST_UNPATCH_CALLBACK(_fn) __KPATCH_CALLBACK(post_unpatch, kpatch_post_unpatch_call_t, _fn)

/* kpatch's KPATCH_PRINTK: printk from patched code (plain printk is fine under klp). */
#define KPATCH_PRINTK(_fmt, ...) printk(_fmt, ## __VA_ARGS__)

#endif /* __KPATCH_MACROS_H_ */
