// SPDX-License-Identifier: GPL-2.0
/*
 * A hand-written livepatch `klpforge convert` must refuse (CONVERT_CLONE_ONLY):
 * it replaces fs/proc/base.c's static __set_oom_adj(), the code behind writes
 * to /proc/PID/oom_adj and oom_score_adj, by its source name. In the fixture
 * kernel gcc kept that function only as __set_oom_adj.isra.0 (IPA-SRA rewrote
 * its arguments): there is no __set_oom_adj in kallsyms for the livepatch
 * core to find, and the clone takes other arguments than the source says, so
 * neither name can be patched with this replacement.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>

/* The source's signature; never loaded (convert refuses the module). */
static int livepatch___set_oom_adj(struct file *file, int oom_adj, bool legacy)
{
	return legacy ? -EPERM : 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "__set_oom_adj",
		.new_func = livepatch___set_oom_adj,
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
MODULE_DESCRIPTION("klpforge convert fixture: replaces a function gcc kept only as a clone");
