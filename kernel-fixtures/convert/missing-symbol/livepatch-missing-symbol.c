// SPDX-License-Identifier: GPL-2.0
/*
 * A hand-written livepatch `klpforge convert` must refuse (CONVERT_UNRESOLVED):
 * its new cmdline_proc_show reads klpforge_no_such_symbol, which neither
 * vmlinux nor any of the kernel's modules has (a typo, or a symbol of another
 * kernel version). Linked as it is, the module would fail to load with
 * "Unknown symbol"; convert names the symbol instead.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

extern int klpforge_no_such_symbol;

static int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "klpforge_no_such_symbol is %d\n", klpforge_no_such_symbol);
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = livepatch_cmdline_proc_show,
	}, { }
};

static struct klp_object objs[] = {
	{
		/* name being NULL means vmlinux */
		.funcs = funcs,
	}, { }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_exit(void)
{
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("klpforge convert fixture: references a symbol that exists nowhere");
