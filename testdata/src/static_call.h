/*
 * static_call.h - a cut-down copy of the kernel's static-call interface, as
 * a user of a static call sees it (include/linux/static_call.h with
 * CONFIG_HAVE_STATIC_CALL_INLINE), enough to compile call sites with gcc.
 *
 *   DECLARE_STATIC_CALL(name, func)  declares the key __SCK__name and the
 *                                    trampoline __SCT__name (both external)
 *   static_call(name)(args...)       calls the trampoline directly; like the
 *                                    kernel it also stores &__SCK__name in
 *                                    .discard.addressable, so the key shows
 *                                    up in the object's symbol table
 *   static_call_mod(name)(args...)   the same without the key reference, as
 *                                    modules use for keys that are not
 *                                    exported: the key is then absent
 *
 * Compile with -DSCALL_MOD to make every static_call() a static_call_mod()
 * (an object with no key symbols: only `objtool --module` accepts it).
 */
#ifndef SCALL_TEST_STATIC_CALL_H
#define SCALL_TEST_STATIC_CALL_H

struct static_call_key {
	void *func;
	unsigned long type;
};

#define STATIC_CALL_KEY(name)	__SCK__##name
#define STATIC_CALL_TRAMP(name)	__SCT__##name

#define __PASTE_(a, b)		a##b
#define __PASTE(a, b)		__PASTE_(a, b)
#define __UNIQUE_ID(prefix)	__PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)

/* include/linux/compiler.h: keep a symbol referenced without using it */
#define __ADDRESSABLE(sym)						\
	static void *__attribute__((section(".discard.addressable"), used)) \
		__UNIQUE_ID(__PASTE(__addressable_, sym)) = (void *)&sym;

#define DECLARE_STATIC_CALL(name, func)					\
	extern struct static_call_key STATIC_CALL_KEY(name);		\
	extern __typeof__(func) STATIC_CALL_TRAMP(name)

#define __STATIC_CALL_ADDRESSABLE(name)	__ADDRESSABLE(STATIC_CALL_KEY(name))

#define __static_call(name)	(&STATIC_CALL_TRAMP(name))

#define static_call_mod(name)	__static_call(name)

#ifdef SCALL_MOD
#define static_call(name)	static_call_mod(name)
#else
#define static_call(name)						\
({									\
	__STATIC_CALL_ADDRESSABLE(name);				\
	__static_call(name);						\
})
#endif

#endif
