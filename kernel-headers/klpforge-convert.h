/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Annotations for `klpforge convert`, which turns a hand-written livepatch
 * module's references to symbols the kernel does not export into klp
 * relocations.
 *
 * A name the running kernel has more than once (two `static` functions of
 * the same name in different files) needs to be told apart:
 *
 *	extern int show_val_kb(struct seq_file *m, const char *s, unsigned long num);
 *	KLPFORGE_SYMPOS(show_val_kb, vmlinux, 2);
 *
 * says that this module's `show_val_kb` is the second symbol of that name in
 * vmlinux, counted in kallsyms order as the livepatch core counts `sympos`
 * (1-based). `objname` is `vmlinux` or a module's name as the kernel knows
 * it (`nfsd`, `binfmt_misc`). `klpforge convert` lists every candidate with
 * its file and position when an annotation is missing.
 *
 * Each annotation is a string in the `.klpforge.sympos` section; convert
 * reads them and leaves the section unallocated in its output, so nothing of
 * them is loaded into the kernel.
 */
#ifndef _KLPFORGE_CONVERT_H
#define _KLPFORGE_CONVERT_H

#include <linux/compiler.h>
#include <linux/version.h>

/* __section() took a bare token before 5.10 and takes a string since. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
# define __klpforge_sympos_section __section(.klpforge.sympos)
#else
# define __klpforge_sympos_section __section(".klpforge.sympos")
#endif

#define KLPFORGE_SYMPOS(sym, objname, pos)                                     \
	static const char __UNIQUE_ID(klpforge_sympos)[] __used __aligned(1)  \
		__klpforge_sympos_section = #sym ":" #objname ":" #pos

#endif /* _KLPFORGE_CONVERT_H */
