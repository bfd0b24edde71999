/*
 * remedy.c - the remedy tests' object: one function, 64-byte aligned (so the
 * crossing verdicts are exact), that calls the static call remedy_hook 32
 * times with a few bytes of padding before each call, so that built without
 * call alignment some calls cross a 64-byte line (crosses-cache-line) and
 * built with it (-Wa,-malign-branch-boundary=64 -Wa,-malign-branch=call, or
 * clang's -malign-branch-boundary=64 -malign-branch=call) none does.
 * Build it with -fno-pie: clang's assembler does not pad a call through the
 * PLT.  -DREMEDY_ALIGN=16 aligns the function as compilers do by default: the
 * verdicts are then may-cross-cache-line, and the flags raise the section's
 * alignment to 64.
 */
#include "static_call.h"

int remedy_impl(int);
DECLARE_STATIC_CALL(remedy_hook, remedy_impl);

#define STEP	__asm__ volatile(".skip 3, 0x90"); s += static_call(remedy_hook)(s);
#define STEP8	STEP STEP STEP STEP STEP STEP STEP STEP

#ifndef REMEDY_ALIGN
#define REMEDY_ALIGN	64
#endif

__attribute__((aligned(REMEDY_ALIGN))) int remedy_many(int s)
{
	STEP8 STEP8 STEP8 STEP8
	return s;
}

#ifdef REMEDY_TAIL
/*
 * Tail calls (jmp __SCT__remedy_hook) after 58..63 bytes of nops in 64-aligned
 * functions: some cross a line; -malign-branch=call+jmp aligns them too.
 */
#define TAIL(n)								\
__attribute__((aligned(64))) int remedy_tail##n(int s)			\
{									\
	__asm__ volatile(".rept " #n "\n\tnop\n\t.endr");		\
	return static_call(remedy_hook)(s);				\
}
TAIL(58) TAIL(59) TAIL(60) TAIL(61) TAIL(62) TAIL(63)
#endif
