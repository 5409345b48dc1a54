// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * klpforge verify fixture: a livepatch that must fail to load.
 *
 * Its klp_func names a function vmlinux does not have, so klp_enable_patch()
 * cannot resolve it: the kernel logs "livepatch: symbol
 * 'klpforge_no_such_function' not found in symbol table" and the module's
 * init fails, which insmod reports. `klpforge verify` must show that error
 * and fail. Built by test/slow/verify.test.ts with the fixture kernel's
 * kbuild in a temporary copy of this directory.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int klpforge_replacement(struct seq_file *m, void *v)
{
	seq_puts(m, "klpforge broken livepatch: this must never be reached\n");
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "klpforge_no_such_function",
		.new_func = klpforge_replacement,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		/* A NULL name means vmlinux. */
		.funcs = funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init broken_livepatch_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit broken_livepatch_exit(void)
{
}

module_init(broken_livepatch_init);
module_exit(broken_livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpforge verify fixture: livepatch naming a function that does not exist");
MODULE_INFO(livepatch, "Y");
