/*
 * static_call.h - user-space inline static calls, in the manner of the Linux
 * kernel's include/linux/static_call.h with CONFIG_HAVE_STATIC_CALL_INLINE,
 * retargeted live while other threads run through the call sites.
 * Shipped with scall-objtool: `scall-objtool runtime-path` (or
 * python -c 'import scall_objtool.runtime as r; print(r.path())') prints
 * the directory holding this file, static_call.c and static_call_sites.ld.
 *
 *   DECLARE_STATIC_CALL(name, func)   declare the key __SCK__name and the
 *                                     trampoline __SCT__name (typeof(func))
 *   DEFINE_STATIC_CALL(name, func)    define both, in exactly one file: the
 *                                     key (current target + trampoline) and
 *                                     the trampoline in .static_call.text,
 *                                     `jmp func` (E9 rel32) and a signature
 *   static_call(name)(args...)        a direct `call __SCT__name` (or `jmp`
 *                                     in tail position)
 *   static_call_update(name, func)    retarget: rewrite the trampoline and
 *                                     every site listed for the key in the
 *                                     .static_call_sites table to call (or
 *                                     jump to) func directly.  Returns the
 *                                     number of sites rewritten, -1 on error
 *                                     (errno set, nothing changed)
 *   static_call_init(policy)          say which scall-objtool policy wrote
 *                                     the table; picks the patcher
 *   static_call_setup(policy, patcher) the same with an explicit patcher
 *
 * The table is written into the objects after compiling, by
 *   scall-objtool write [--policy seed|kernel] [--allow-tail] FILE.o
 * and bracketed at link time by __start_static_call_sites and
 * __stop_static_call_sites (link with -Wl,-T,static_call_sites.ld).
 *
 * Patchers (see docs/runtime.md).  Code is never made writable: at set-up
 * the executable mappings that hold sites and trampolines are copied into a
 * memfd which is mapped back over them (R-X, MAP_FIXED) and a second time
 * elsewhere (RW-); every write goes through that alias.  Other threads may
 * run through the sites during an update with either patcher:
 *
 *   STATIC_CALL_PATCHER_STORE       the seed thread's rule (Lutomirski): one
 *       4-byte store of the new rel32 per site, no other thread stopped.
 *       Only for E8/E9 sites whose 5 bytes do not cross a 64-byte line where
 *       they are: a crossing site is refused (stays on the trampoline, which
 *       is retargeted the same way and never crosses a line).
 *   STATIC_CALL_PATCHER_BREAKPOINT  the kernel's text_poke_bp handshake: int3
 *       on the first byte of every site of the key, serialise all threads
 *       (membarrier SYNC_CORE), write the rel32, serialise, restore the
 *       first byte, serialise; a SIGTRAP handler emulates the call (or tail
 *       jump) to the key's current target meanwhile.  Every site, crossing
 *       or not.
 *   STATIC_CALL_PATCHER_STORE_UNSAFE  the control experiment only: the
 *       single store applied to crossing sites too (may tear; never use).
 *
 * Policy.  A table written under the seed policy (scall-objtool's default)
 * promises that every site is an E8 call (or an E9 tail call with
 * --allow-tail) whose 5 bytes do not cross a 64-byte cache line.  In a
 * relocatable object only the offset modulo the section alignment is known,
 * so the STORE patcher checks that promise again at the final address and
 * leaves a crossing site on the trampoline (it still reaches the new target,
 * one jump later).  A table written under the kernel policy lists every call
 * and tail call, crossing or not.  The runtime cannot see the policy in the
 * table, so the program says it once, before the first update:
 *
 *   static_call_init(STATIC_CALL_POLICY_SEED)    store patcher
 *   static_call_init(STATIC_CALL_POLICY_KERNEL)  breakpoint patcher
 *
 * Without a call the seed policy (store patcher) applies on the first
 * update: telling the runtime SEED about a kernel-policy table only leaves
 * the crossing sites on the trampoline, never breaks anything.  Call it
 * before starting threads: set-up remaps the text (safe but slower later).
 *
 * Keys are global (hidden) objects in their defining file; DECLARE_STATIC_CALL also
 * keeps &__SCK__name in .discard.addressable (as the kernel's static_call()
 * does) so that the key is in the symbol table of every object that declares
 * the static call and scall-objtool finds it there (static_call_sites.ld
 * discards the section at link time).
 *
 * Limits: x86-64 Linux only; func must be a function name (it is pasted into
 * the trampoline's assembly) defined in the executable within +-2 GiB of the
 * code (a target that rel32 cannot reach is refused with ERANGE); NULL
 * targets are not supported; the program must not install its own SIGTRAP
 * handler after set-up when it uses the breakpoint patcher (one installed
 * before is chained to for traps that are not ours).
 */
#ifndef USERSPACE_STATIC_CALL_H
#define USERSPACE_STATIC_CALL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct static_call_key {
	void *func;		/* current target */
	void *tramp;		/* the trampoline, __SCT__name */
};

/* One entry of .static_call_sites, as the kernel and scall-objtool lay it
 * out: both fields are PC-relative (R_X86_64_PC32) to the field itself. */
struct static_call_site {
	int32_t addr;		/* -> the call/jmp instruction */
	int32_t key;		/* -> __SCK__name, | STATIC_CALL_SITE_TAIL */
};

#define STATIC_CALL_SITE_TAIL	1UL	/* the site is a jmp (tail call) */
#define STATIC_CALL_SITE_INIT	2UL	/* reserved by the kernel; never set here */
#define STATIC_CALL_SITE_FLAGS	3UL

#define STATIC_CALL_CACHE_LINE	64
#define STATIC_CALL_INSN_SIZE	5	/* E8/E9 rel32 */

enum static_call_policy {
	STATIC_CALL_POLICY_SEED = 0,	/* E8 (E9) sites that never cross a line */
	STATIC_CALL_POLICY_KERNEL = 1,	/* every call and tail call */
};

enum static_call_patcher {
	STATIC_CALL_PATCHER_DEFAULT = 0,	/* STORE for seed, BREAKPOINT for kernel */
	STATIC_CALL_PATCHER_STORE = 1,		/* one 4-byte store; non-crossing sites */
	STATIC_CALL_PATCHER_BREAKPOINT = 2,	/* int3 handshake; every site */
	STATIC_CALL_PATCHER_STORE_UNSAFE = 3,	/* control: one store, crossing too */
};

#define STATIC_CALL_KEY(name)	__SCK__##name
#define STATIC_CALL_TRAMP(name)	__SCT__##name
#define STATIC_CALL_TRAMP_STR(name)	"__SCT__" #name

#define __SC_PASTE_(a, b)	a##b
#define __SC_PASTE(a, b)	__SC_PASTE_(a, b)
#define __SC_UNIQUE_ID(prefix)	__SC_PASTE(__SC_PASTE(__sc_unique_, prefix), __COUNTER__)

/* include/linux/compiler.h's __ADDRESSABLE: keep a symbol referenced */
#define __SC_ADDRESSABLE(sym)						\
	static void *__attribute__((section(".discard.addressable"), used)) \
		__SC_UNIQUE_ID(__SC_PASTE(__addressable_, sym)) = (void *)&sym;

/*
 * Keys and trampolines have hidden visibility: they are never preempted, so
 * gcc calls the trampoline directly (E8/E9 rel32) even with -fno-plt or
 * -fPIC, where a default-visibility function is called through the GOT (an
 * indirect call scall-objtool cannot list) or the PLT.  They stay global
 * symbols, which is what scall-objtool looks for.
 */
#define __SC_HIDDEN	__attribute__((visibility("hidden")))

#define DECLARE_STATIC_CALL(name, func)					\
	extern struct static_call_key STATIC_CALL_KEY(name) __SC_HIDDEN;	\
	extern __typeof__(func) STATIC_CALL_TRAMP(name) __SC_HIDDEN;	\
	__SC_ADDRESSABLE(STATIC_CALL_KEY(name))				\
	extern struct static_call_key STATIC_CALL_KEY(name)

/*
 * The trampoline: E9 rel32 to the current target, then the kernel's
 * signature ud1 %esp, %ecx (0f b9 cc), 8 bytes in all and 8-aligned, so its
 * rel32 never crosses a cache line either.  It is a GLOBAL symbol (which is
 * how scall-objtool recognises a trampoline) in its own section.
 */
#define __STATIC_CALL_TRAMP_ASM(name, func)				\
	__asm__(".pushsection .static_call.text, \"ax\", @progbits\n"	\
		"\t.balign 8\n"						\
		"\t.globl " STATIC_CALL_TRAMP_STR(name) "\n"		\
		"\t.hidden " STATIC_CALL_TRAMP_STR(name) "\n"		\
		"\t.type " STATIC_CALL_TRAMP_STR(name) ", @function\n"	\
		STATIC_CALL_TRAMP_STR(name) ":\n"			\
		"\t.byte 0xe9\n"					\
		"\t.long " #func " - (. + 4)\n"				\
		"\t.byte 0x0f, 0xb9, 0xcc\n"				\
		"\t.size " STATIC_CALL_TRAMP_STR(name) ", . - "		\
			STATIC_CALL_TRAMP_STR(name) "\n"		\
		".popsection\n")

#define DEFINE_STATIC_CALL(name, _func)					\
	DECLARE_STATIC_CALL(name, _func);				\
	struct static_call_key STATIC_CALL_KEY(name) = {		\
		.func = (void *)(_func),				\
		.tramp = (void *)&STATIC_CALL_TRAMP(name),		\
	};								\
	__STATIC_CALL_TRAMP_ASM(name, _func)

/*
 * A plain call of the trampoline by name.  (The kernel's version is a
 * statement expression yielding &__SCT__name; gcc -O0 turns that into an
 * indirect call through a register, so here the name is used directly.)
 */
#define static_call(name)	STATIC_CALL_TRAMP(name)

#define static_call_update(name, func)					\
({									\
	__typeof__(&STATIC_CALL_TRAMP(name)) __sc_new = (func);	\
	__static_call_update(&STATIC_CALL_KEY(name), (void *)__sc_new);	\
})

/* Library (static_call.c). */
int static_call_init(enum static_call_policy policy);
/* Choose policy and patcher, remap the text, register membarrier and the
 * SIGTRAP handler as the patcher needs.  0, or -1 with errno set (EBUSY:
 * an update was already made under another choice; ENOSYS: no membarrier
 * for the breakpoint patcher; others from mmap/memfd_create). */
int static_call_setup(enum static_call_policy policy, enum static_call_patcher patcher);
enum static_call_policy static_call_policy(void);
enum static_call_patcher static_call_patcher(void);
/* How the breakpoint patcher serialises the other threads:
 * "membarrier-sync-core", "membarrier-expedited" (the fallback; on x86 the
 * interrupted threads return to user mode through IRET, which serialises)
 * or "none" before set-up / for the store patchers. */
const char *static_call_sync_method(void);
/* Number of SIGTRAPs the breakpoint patcher's handler emulated (all threads). */
unsigned long static_call_emulated(void);
int __static_call_update(struct static_call_key *key, void *func);

/* The table, for inspection (the demo prints it). */
const struct static_call_site *static_call_sites_begin(void);
const struct static_call_site *static_call_sites_end(void);

static inline unsigned char *static_call_site_addr(const struct static_call_site *s)
{
	return (unsigned char *)&s->addr + s->addr;
}

static inline struct static_call_key *static_call_site_key(const struct static_call_site *s)
{
	uintptr_t k = (uintptr_t)&s->key + s->key;

	return (struct static_call_key *)(k & ~STATIC_CALL_SITE_FLAGS);
}

static inline unsigned long static_call_site_flags(const struct static_call_site *s)
{
	return ((uintptr_t)&s->key + s->key) & STATIC_CALL_SITE_FLAGS;
}

/* 1 when the 5 bytes at insn cross a cache line where they are now. */
static inline int static_call_crosses_line(const void *insn)
{
	return (uintptr_t)insn % STATIC_CALL_CACHE_LINE + STATIC_CALL_INSN_SIZE
		> STATIC_CALL_CACHE_LINE;
}

/* Destination of the E8/E9 rel32 at insn (NULL for any other opcode). */
static inline void *static_call_insn_dest(const unsigned char *insn)
{
	int32_t rel;

	if (insn[0] != 0xe8 && insn[0] != 0xe9)
		return NULL;
	__builtin_memcpy(&rel, insn + 1, 4);
	return (void *)(insn + STATIC_CALL_INSN_SIZE + rel);
}

/*
 * Check one table entry for `key` before anything is written (also used by
 * the tests).  Returns
 *    1  the site may be rewritten,
 *    0  fallback: the store patcher and the site crosses a line where it
 *       is now (it keeps calling the trampoline),
 *   -1  the entry does not describe a site of this key (*why says what);
 *       the update must not write anything.
 * old_func is the key's current target (a site may already call it directly).
 */
int static_call_check_site(const struct static_call_site *site,
			   const struct static_call_key *key, const void *old_func,
			   enum static_call_patcher patcher, const char **why);

#ifdef __cplusplus
}
#endif

#endif
