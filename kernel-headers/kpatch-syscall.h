/* SPDX-License-Identifier: GPL-2.0 */
/*
 * klpforge's implementation of kpatch's KPATCH_SYSCALL_DEFINE*: a system call
 * defined with SYSCALL_DEFINEn keeps its body in `static inline __do_sys_NAME`,
 * and the kernel's inline implies notrace, so when gcc keeps that body out of
 * line it cannot be livepatched. Writing KPATCH_SYSCALL_DEFINEn instead, in
 * the patched file, defines the same entry points with a plain static body
 * under a new name (__kpatch_do_sys_NAME, as kpatch does): the traced entry
 * __x64_sys_NAME (s390x: __se_sys_NAME; ppc64le: sys_NAME) changes (it inlines or calls the new body) and is what gets
 * patched; the old notrace __do_sys_NAME is left alone. Keeping the old name
 * would make the livepatch target a function with no ftrace entry in the
 * running kernel. The syscall's metadata stays the running kernel's.
 */
#ifndef __KPATCH_SYSCALL_H_
#define __KPATCH_SYSCALL_H_

#include <linux/syscalls.h>

/* The generic __se_sys_NAME of the x86 and powerpc wrappers, calling the renamed body. */
#define __KPATCH_SE_SYSx(x, name, ...)						\
	static long __se_sys##name(__MAP(x,__SC_LONG,__VA_ARGS__))		\
	{									\
		long ret = __kpatch_do_sys##name(__MAP(x,__SC_CAST,__VA_ARGS__));\
		__MAP(x,__SC_TEST,__VA_ARGS__);					\
		__PROTECT(x, ret,__MAP(x,__SC_ARGS,__VA_ARGS__));		\
		return ret;							\
	}

#if defined(CONFIG_X86_64) && defined(CONFIG_ARCH_HAS_SYSCALL_WRAPPER)
/* arch/x86/include/asm/syscall_wrapper.h's __SYSCALL_DEFINEx, without `inline`. */
#define __KPATCH_SYSCALL_DEFINEx(x, name, ...)					\
	static long __se_sys##name(__MAP(x,__SC_LONG,__VA_ARGS__));		\
	static long __kpatch_do_sys##name(__MAP(x,__SC_DECL,__VA_ARGS__));	\
	__X64_SYS_STUBx(x, name, __VA_ARGS__)					\
	__IA32_SYS_STUBx(x, name, __VA_ARGS__)					\
	__KPATCH_SE_SYSx(x, name, __VA_ARGS__)					\
	static long __kpatch_do_sys##name(__MAP(x,__SC_DECL,__VA_ARGS__))
#elif defined(CONFIG_S390) && defined(CONFIG_ARCH_HAS_SYSCALL_WRAPPER)
/*
 * arch/s390/include/asm/syscall_wrapper.h's __SYSCALL_DEFINEx, without `inline`:
 * __s390x_sys_NAME is an alias of the traced __se_sys_NAME, which changes and is
 * patched; the 31-bit compat entry __s390_sys_NAME calls the new body too.
 */
#ifdef CONFIG_COMPAT
#define __KPATCH_S390_SYS_STUBx(x, name, ...)					\
	long __s390_sys##name(struct pt_regs *regs);				\
	long __s390_sys##name(struct pt_regs *regs)				\
	{									\
		long ret = __kpatch_do_sys##name(SYSCALL_PT_ARGS(x, regs,	\
			__SC_COMPAT_CAST, __MAP(x, __SC_TYPE, __VA_ARGS__)));	\
		__MAP(x,__SC_TEST,__VA_ARGS__);					\
		return ret;							\
	}
#else
#define __KPATCH_S390_SYS_STUBx(x, name, ...)
#endif
#define __KPATCH_SYSCALL_DEFINEx(x, name, ...)					\
	__diag_push();								\
	__diag_ignore(GCC, 8, "-Wattribute-alias",				\
		      "Type aliasing is used to sanitize syscall arguments");	\
	long __s390x_sys##name(struct pt_regs *regs)				\
		__attribute__((alias(__stringify(__se_sys##name))));		\
	static long __kpatch_do_sys##name(__MAP(x,__SC_DECL,__VA_ARGS__));	\
	long __se_sys##name(struct pt_regs *regs);				\
	__KPATCH_S390_SYS_STUBx(x, name, __VA_ARGS__)				\
	long __se_sys##name(struct pt_regs *regs)				\
	{									\
		long ret = __kpatch_do_sys##name(SYSCALL_PT_ARGS(x, regs,	\
				__SC_CAST, __MAP(x, __SC_TYPE, __VA_ARGS__)));	\
		__MAP(x,__SC_TEST,__VA_ARGS__);					\
		return ret;							\
	}									\
	__diag_pop();								\
	static long __kpatch_do_sys##name(__MAP(x,__SC_DECL,__VA_ARGS__))
#elif defined(CONFIG_PPC64) && defined(CONFIG_ARCH_HAS_SYSCALL_WRAPPER)
/*
 * arch/powerpc/include/asm/syscall_wrapper.h's __SYSCALL_DEFINEx (6.1), without
 * `inline`: sys_NAME is the traced entry the syscall table calls, and changes.
 */
#define __KPATCH_SYSCALL_DEFINEx(x, name, ...)					\
	long sys##name(const struct pt_regs *regs);				\
	static long __se_sys##name(__MAP(x,__SC_LONG,__VA_ARGS__));		\
	static long __kpatch_do_sys##name(__MAP(x,__SC_DECL,__VA_ARGS__));	\
	long sys##name(const struct pt_regs *regs)				\
	{									\
		return __se_sys##name(SC_POWERPC_REGS_TO_ARGS(x,__VA_ARGS__));	\
	}									\
	__KPATCH_SE_SYSx(x, name, __VA_ARGS__)					\
	static long __kpatch_do_sys##name(__MAP(x,__SC_DECL,__VA_ARGS__))
#else
/* Elsewhere the generic wrapper applies; its body is not inline. */
#define __KPATCH_SYSCALL_DEFINEx(x, name, ...) __SYSCALL_DEFINEx(x, name, __VA_ARGS__)
#endif

#define KPATCH_SYSCALL_DEFINE1(name, ...) __KPATCH_SYSCALL_DEFINEx(1, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE2(name, ...) __KPATCH_SYSCALL_DEFINEx(2, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE3(name, ...) __KPATCH_SYSCALL_DEFINEx(3, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE4(name, ...) __KPATCH_SYSCALL_DEFINEx(4, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE5(name, ...) __KPATCH_SYSCALL_DEFINEx(5, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE6(name, ...) __KPATCH_SYSCALL_DEFINEx(6, _##name, __VA_ARGS__)

#endif /* __KPATCH_SYSCALL_H_ */
