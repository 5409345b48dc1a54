// SPDX-License-Identifier: GPL-2.0
/*
 * A hand-written livepatch for `klpforge convert`: the new version_proc_show
 * adds to /proc/version what two `static` symbols of the kernel give, symbols
 * no module can link against:
 *
 *   pipe_max_size  fs/pipe.c (/proc/sys/fs/pipe-max-size), the only one of
 *                  that name in vmlinux
 *   print_cpu()    kernel/time/timer_list.c: one CPU's part of /proc/timer_list.
 *                  kernel/sched/debug.c has a static print_cpu(m, cpu) too, so
 *                  the reference needs KLPFORGE_SYMPOS to say which:
 *                  timer_list.c's is the second in kallsyms order (the higher
 *                  address) in the fixture kernel.
 *
 * $ cat /proc/version
 * Linux version 6.1.192 ...
 * klpforge: pipe-max-size 1048576, hrtimers of cpu 0:
 * cpu: 0
 *  clock 0:
 * ...
 *
 * Built with -DKLPFORGE_NO_ANNOTATION the annotation is left out: convert
 * must then refuse the ambiguous print_cpu and list both candidates.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/timekeeping.h>
#include <linux/utsname.h>
#include "klpforge-convert.h"

/*
 * Declared here because no header does: they are static in their files.
 * The types must be the kernel's, which no compiler checks across modules.
 */
extern unsigned int pipe_max_size;
extern void print_cpu(struct seq_file *m, int cpu, u64 now);

#ifndef KLPFORGE_NO_ANNOTATION
KLPFORGE_SYMPOS(print_cpu, vmlinux, 2);
#endif

/* fs/proc/version.c's version_proc_show, and then the new lines. */
static int livepatch_version_proc_show(struct seq_file *m, void *v)
{
	/* linux_proc_banner is global but not exported: converted as well. */
	seq_printf(m, linux_proc_banner, utsname()->sysname, utsname()->release,
		   utsname()->version);
	seq_printf(m, "klpforge: pipe-max-size %u, hrtimers of cpu 0:\n",
		   READ_ONCE(pipe_max_size));
	/* As timer_list_show calls it: process context, a time in ns. */
	print_cpu(m, 0, ktime_to_ns(ktime_get()));
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "version_proc_show",
		.new_func = livepatch_version_proc_show,
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
MODULE_DESCRIPTION("klpforge convert fixture: calls a duplicated static function, reads a static variable");
