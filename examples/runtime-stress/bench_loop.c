/*
 * bench_loop.c - the benchmark's loop, compiled four times (bench.c):
 *   loop_retpoline   through a function pointer, with retpolines
 *                    (gcc -mindirect-branch=thunk, clang -mretpoline)
 *   loop_pointer     through a function pointer
 *   loop_trampoline  static_call(): a site left out of the table, so it
 *                    keeps calling the trampoline (call, then jmp)
 *   loop_direct      static_call(): a listed site (E8), patched to call
 *                    the target directly by the store and breakpoint patchers
 *   loop_prefixed    static_call_prefixed(): a listed cs-prefixed site
 *                    (2E E8), patched by the prefix and breakpoint patchers
 * The pointer is volatile, so it is loaded at each call, as a hook pointer
 * in a structure would be.
 */
#include "static_call.h"

long bench_target(long x);
DECLARE_STATIC_CALL(sc_bench, bench_target);
extern long (*volatile bench_fp)(long);

#if defined(VIA_POINTER)
#define CALL(x)	bench_fp(x)
#elif defined(VIA_PREFIX)
#define CALL(x)	static_call_prefixed(sc_bench, x)
#else
#define CALL(x)	static_call(sc_bench)(x)
#endif

__attribute__((noinline, aligned(STATIC_CALL_CACHE_LINE))) long LOOP_NAME(long n)
{
	long acc = 0;

	for (long i = 0; i < n; i++)
		acc += CALL(i);
	return acc;
}
