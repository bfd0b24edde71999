/*
 * stress_sites.c - defines sc_a and sc_b (keys and trampolines) and the call
 * sites written in C.  Functions declared 64-aligned put their sections on a
 * line boundary, so scall-objtool knows their calls never cross a line (the
 * seed policy lists them); the others vary with the compiler and flags.
 */
#include "stress.h"

DEFINE_STATIC_CALL(sc_a, tgt_a0);
DEFINE_STATIC_CALL(sc_b, tgt_b0);

#define LINE	__attribute__((noinline, aligned(STATIC_CALL_CACHE_LINE)))

LINE long s_call_a(long x) { return static_call(sc_a)(x) + 1; }
LINE long s_call_b(long x) { return static_call(sc_b)(x) + 2; }
LINE long s_call2_b(long x) { return static_call(sc_b)(x + 1) + 7; }

/* jmp __SCT__sc_a at -O2: seed "tail-call" fallback, kernel listed */
__attribute__((noinline)) long s_tail_a(long x) { return static_call(sc_a)(x); }

/* .text.unlikely, 1-aligned: "depends" (seed fallback), kernel listed */
__attribute__((noinline, cold)) long s_cold_b(long x) { return static_call(sc_b)(x) + 3; }

/* cs-prefixed calls through inline asm (2E E8): one 64-aligned, one where
 * the compiler puts it, one with two arguments' worth of work around it */
LINE long p_call_a(long x) { return static_call_prefixed(sc_a, x) + 5; }
__attribute__((noinline)) long p_call_b(long x) { return static_call_prefixed(sc_b, x) + 6; }
__attribute__((noinline, section(".text.other"))) long p_call2_b(long x)
{
	return static_call_prefixed(sc_b, x + 1) + 8;
}

/* another text section, 16-aligned */
__attribute__((noinline, section(".text.other"))) long s_other_a(long x)
{
	return static_call(sc_a)(x) + 4;
}
