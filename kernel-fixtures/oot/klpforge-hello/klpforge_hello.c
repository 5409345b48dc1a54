// SPDX-License-Identifier: GPL-2.0
/*
 * An out-of-tree module for klpforge's --oot-module test: /proc/klpforge_hello
 * shows a greeting and how many times it was read.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

static unsigned long reads;

static const char *greeting(void)
{
	return "hello";
}

static int hello_show(struct seq_file *m, void *v)
{
	reads++;
	seq_printf(m, "%s from an out-of-tree module (%lu)\n", greeting(), reads);
	return 0;
}

static int __init hello_init(void)
{
	if (!proc_create_single("klpforge_hello", 0444, NULL, hello_show))
		return -ENOMEM;
	return 0;
}

static void __exit hello_exit(void)
{
	remove_proc_entry("klpforge_hello", NULL);
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpforge out-of-tree module fixture");
