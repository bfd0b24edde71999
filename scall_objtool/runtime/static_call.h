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
 *   scall-objtool write [--policy seed|kernel] [--allow-tail] [--allow-prefixed] FILE.o
 * and bracketed at link time by __start_static_call_sites and
 * __stop_static_call_sites (link with -Wl,-T,static_call_sites.ld).
 *
 * Patchers (see docs/runtime.md).  Code is never made writable: at set-up
 * the executable mappings that hold sites and trampolines are copied into a
 * memfd which is mapped back over them (R-X, MAP_FIXED) and a second time
 * elsewhere (RW-); every write goes through that alias.  Other threads may
 * run through the sites during an update with any patcher:
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
 *   STATIC_CALL_PATCHER_PREFIX      the seed thread's cs-prefix design
 *       (Torvalds), for sites emitted by static_call_prefixed() as
 *       2E E8 rel32: int3 on the prefix byte, serialise all threads, write
 *       the rel32 (one byte at a time: no atomic store is needed), serialise,
 *       put the prefix back.  A thread that traps has RIP on the E8 already;
 *       the handler waits until the displacement is in place and returns
 *       (no emulation).  A thread it released is sent one SIGTRAP at the
 *       start of the next update (a "nudge": back onto the prefix byte if
 *       it has not executed the E8 yet).  Every 2E E8 site, crossing or
 *       not; the others stay on the trampoline.
 *   STATIC_CALL_PATCHER_STORE_UNSAFE  the control experiment only: the
 *       single store applied to crossing sites too (may tear; never use).
 *   STATIC_CALL_PATCHER_PREFIX_EARLY  the prefix patcher's control: its
 *       trap handler returns at once, before the displacement is written.
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
 *   static_call_setup(STATIC_CALL_POLICY_SEED, STATIC_CALL_PATCHER_PREFIX)
 *       prefix patcher, for a table written with --allow-prefixed (which
 *       lists the 2E E8 sites, crossing or not; the kernel policy lists them
 *       too, for the breakpoint patcher)
 *
 * Which listed sites a patcher rewrites is static_call_patcher_owns(): the
 * patcher reads the site's bytes (2E E8, E8, E9) and where it lies.
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
 * handler after set-up when it uses the breakpoint or the prefix patcher
 * (one installed before is chained to for traps that are not ours), nor
 * block SIGTRAP in threads that run sites.  Under the prefix patcher a
 * thread released from a trap may get one SIGTRAP later (SA_RESTART: an
 * interrupted system call restarts where the kernel restarts it).
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
#define STATIC_CALL_CS_PREFIX	0x2e	/* the prefixed site: 2E E8 rel32, 6 bytes */

enum static_call_policy {
	STATIC_CALL_POLICY_SEED = 0,	/* E8 (E9) sites that never cross a line */
	STATIC_CALL_POLICY_KERNEL = 1,	/* every call and tail call */
};

enum static_call_patcher {
	STATIC_CALL_PATCHER_DEFAULT = 0,	/* STORE for seed, BREAKPOINT for kernel */
	STATIC_CALL_PATCHER_STORE = 1,		/* one 4-byte store; non-crossing sites */
	STATIC_CALL_PATCHER_BREAKPOINT = 2,	/* int3 handshake; every site */
	STATIC_CALL_PATCHER_STORE_UNSAFE = 3,	/* control: one store, crossing too */
	STATIC_CALL_PATCHER_PREFIX = 4,		/* int3 on a cs prefix; 2E E8 sites */
	STATIC_CALL_PATCHER_PREFIX_EARLY = 5,	/* control: the trap returns at once */
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

/*
 * The cs-prefixed call site (design 1 of the seed thread, Torvalds):
 *
 *   static_call_prefixed(name, args...)
 *
 * calls the static call `name` through inline asm as `2E E8 rel32` (a cs
 * segment override, which does nothing in 64-bit mode, in front of a call
 * to __SCT__name), so that the prefix patcher can put int3 on the prefix
 * byte: a thread that hits it traps with RIP already on the E8, and the
 * trap handler only has to return once the new displacement is in place.
 * Zero to six integer or pointer arguments; the result is the static call's
 * return type, which must be void, an integer or a pointer (returned in
 * %rax; a floating-point argument is refused at compile time).
 *
 * The asm states the x86-64 System V calling convention itself (the
 * compiler sees no call):
 *   - %rax is the result; the argument registers %rdi, %rsi, %rdx, %rcx,
 *     %r8, %r9 are operands or clobbered, and so are %r10, %r11;
 *   - every vector register (%xmm0-15; with AVX-512 also %xmm16-31 and the
 *     mask registers %k0-7): no SSE/AVX register is preserved by a call;
 *   - the x87 stack st(0)-st(7) (it must be empty at a call, and the
 *     callee may use it) and the MMX registers that alias it; "fpsr" (x87
 *     status word);
 *   - "cc" (flags) and "memory" (the callee may read and write anything);
 *   - the stack: the asm moves %rsp below the 128-byte red zone (the
 *     compiler sees no call, so the function may keep data there, which
 *     the call's return address would overwrite) and aligns it to 16 bytes
 *     as the ABI requires at a call; the caller's %rsp is kept in a
 *     register the callee preserves (the compiler picks one: every
 *     caller-saved register is clobbered).
 * The direction flag is clear before the call (the ABI's invariant, which
 * the compiler keeps) and the callee returns it clear, so it needs no
 * clobber; %mxcsr and the x87 control word are callee-saved.
 * Cost: the site is 6 bytes instead of 5, plus 15 bytes of stack handling
 * (lea, and, two movs); no unwinding (C++ exceptions, backtrace()) through
 * the callee, whose caller's frame the asm's %rsp moves hide from CFI.
 */
#define __SC_CS_NARG(...)	__SC_CS_NARG_(0, ##__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)
#define __SC_CS_NARG_(_0, _1, _2, _3, _4, _5, _6, n, ...)	n

#define __SC_CS_ARG(i, a)						\
	_Static_assert(__builtin_classify_type(a) != 8 &&		\
		       __builtin_classify_type(a) != 9,			\
		       "static_call_prefixed: integer or pointer arguments only"); \
	unsigned long __sc_t##i = (unsigned long)(a);
#define __SC_CS_TEMPS0()
#define __SC_CS_TEMPS1(a)	__SC_CS_ARG(1, a)
#define __SC_CS_TEMPS2(a, b)	__SC_CS_TEMPS1(a) __SC_CS_ARG(2, b)
#define __SC_CS_TEMPS3(a, b, c)	__SC_CS_TEMPS2(a, b) __SC_CS_ARG(3, c)
#define __SC_CS_TEMPS4(a, b, c, d)	__SC_CS_TEMPS3(a, b, c) __SC_CS_ARG(4, d)
#define __SC_CS_TEMPS5(a, b, c, d, e)	__SC_CS_TEMPS4(a, b, c, d) __SC_CS_ARG(5, e)
#define __SC_CS_TEMPS6(a, b, c, d, e, f)	__SC_CS_TEMPS5(a, b, c, d, e) __SC_CS_ARG(6, f)

#define __SC_CS_REG(i, r)	register unsigned long __sc_r##i __asm__(r) = __sc_t##i;
#define __SC_CS_REGS0
#define __SC_CS_REGS1	__SC_CS_REG(1, "rdi")
#define __SC_CS_REGS2	__SC_CS_REGS1 __SC_CS_REG(2, "rsi")
#define __SC_CS_REGS3	__SC_CS_REGS2 __SC_CS_REG(3, "rdx")
#define __SC_CS_REGS4	__SC_CS_REGS3 __SC_CS_REG(4, "rcx")
#define __SC_CS_REGS5	__SC_CS_REGS4 __SC_CS_REG(5, "r8")
#define __SC_CS_REGS6	__SC_CS_REGS5 __SC_CS_REG(6, "r9")

#define __SC_CS_OUT0
#define __SC_CS_OUT1	, "+r"(__sc_r1)
#define __SC_CS_OUT2	__SC_CS_OUT1, "+r"(__sc_r2)
#define __SC_CS_OUT3	__SC_CS_OUT2, "+r"(__sc_r3)
#define __SC_CS_OUT4	__SC_CS_OUT3, "+r"(__sc_r4)
#define __SC_CS_OUT5	__SC_CS_OUT4, "+r"(__sc_r5)
#define __SC_CS_OUT6	__SC_CS_OUT5, "+r"(__sc_r6)

/* the argument registers an n-argument call does not use are clobbered */
#define __SC_CS_CLOB0	"rdi", "rsi", "rdx", "rcx", "r8", "r9",
#define __SC_CS_CLOB1	"rsi", "rdx", "rcx", "r8", "r9",
#define __SC_CS_CLOB2	"rdx", "rcx", "r8", "r9",
#define __SC_CS_CLOB3	"rcx", "r8", "r9",
#define __SC_CS_CLOB4	"r8", "r9",
#define __SC_CS_CLOB5	"r9",
#define __SC_CS_CLOB6

#ifdef __AVX512F__
#define __SC_CS_CLOB_AVX512						\
	"xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
	"xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", \
	"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7",
#else
#define __SC_CS_CLOB_AVX512
#endif

/* every other register the x86-64 SysV convention lets a callee change */
#define __SC_CS_CLOBBERS						\
	"r10", "r11",							\
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",	\
	"xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", \
	__SC_CS_CLOB_AVX512						\
	"st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", \
	"mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7",		\
	"fpsr", "cc", "memory"

#define __SC_CS_ASM(name)						\
	"mov %%rsp, %[__sc_sp]\n\t"					\
	"lea -128(%%rsp), %%rsp\n\t"	/* below the red zone */	\
	"and $-16, %%rsp\n\t"		/* 16-aligned at the call */	\
	".byte 0x2e\n\t"		/* cs: does nothing; int3 goes here */ \
	"call " STATIC_CALL_TRAMP_STR(name) "\n\t"			\
	"mov %[__sc_sp], %%rsp"

#define __SC_CS_CALL(name, n, ...)	__SC_CS_CALL_(name, n, __VA_ARGS__)
#define __SC_CS_CALL_(name, n, ...)					\
({									\
	__SC_CS_TEMPS##n(__VA_ARGS__)					\
	__SC_CS_REGS##n							\
	unsigned long __sc_rax, __sc_sp;				\
	__asm__ volatile(__SC_CS_ASM(name)				\
			 : "=a"(__sc_rax), [__sc_sp] "=&r"(__sc_sp) __SC_CS_OUT##n \
			 :						\
			 : __SC_CS_CLOB##n __SC_CS_CLOBBERS);		\
	(__typeof__(STATIC_CALL_TRAMP(name)(__VA_ARGS__)))__sc_rax;	\
})

#define static_call_prefixed(name, ...)					\
	__SC_CS_CALL(name, __SC_CS_NARG(__VA_ARGS__), ##__VA_ARGS__)

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
/* Number of SIGTRAPs at a site the handler took (all threads): calls the
 * breakpoint patcher emulated, or returns to the E8 of the prefix patcher. */
unsigned long static_call_emulated(void);
/* Number of nudges the prefix patcher sent: a signal, at the start of an
 * update, to each thread its handler had released onto an E8 since the
 * previous one (docs/runtime.md). */
unsigned long static_call_nudges(void);
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

/* 1 when insn is a cs-prefixed call, 2E E8 rel32 (static_call_prefixed). */
static inline int static_call_insn_prefixed(const unsigned char *insn)
{
	return insn[0] == STATIC_CALL_CS_PREFIX && insn[1] == 0xe8;
}

/* Length of the site at insn: 6 for 2E E8 rel32, else 5 (E8/E9 rel32). */
static inline unsigned static_call_insn_len(const unsigned char *insn)
{
	return STATIC_CALL_INSN_SIZE + static_call_insn_prefixed(insn);
}

/* 1 when the bytes of the site at insn cross a cache line where they are now. */
static inline int static_call_crosses_line(const void *insn)
{
	return (uintptr_t)insn % STATIC_CALL_CACHE_LINE + static_call_insn_len(insn)
		> STATIC_CALL_CACHE_LINE;
}

/* Destination of the E8/E9 rel32 at insn, or of the E8 after a cs prefix
 * (NULL for any other opcode). */
static inline void *static_call_insn_dest(const unsigned char *insn)
{
	int32_t rel;

	insn += static_call_insn_prefixed(insn);
	if (insn[0] != 0xe8 && insn[0] != 0xe9)
		return NULL;
	__builtin_memcpy(&rel, insn + 1, 4);
	return (void *)(insn + STATIC_CALL_INSN_SIZE + rel);
}

/*
 * Whether `patcher` rewrites the listed site at insn (its own sites), where
 * it is now; the others keep calling the trampoline, which every patcher
 * retargets:
 *   store          E8/E9 whose 5 bytes do not cross a line (the seed rule)
 *   store-unsafe   every E8/E9 (the control)
 *   prefix(-early) every 2E E8, crossing or not (design 1)
 *   breakpoint     every site: E8, E9, 2E E8
 */
static inline int static_call_patcher_owns(enum static_call_patcher patcher,
					   const unsigned char *insn)
{
	int prefixed = static_call_insn_prefixed(insn);

	switch (patcher) {
	case STATIC_CALL_PATCHER_STORE:
		return !prefixed && !static_call_crosses_line(insn);
	case STATIC_CALL_PATCHER_STORE_UNSAFE:
		return !prefixed;
	case STATIC_CALL_PATCHER_PREFIX:
	case STATIC_CALL_PATCHER_PREFIX_EARLY:
		return prefixed;
	default:
		return 1;
	}
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
