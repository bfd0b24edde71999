/*
 * clobber.c - does static_call_prefixed() state every register a call may
 * change?  A caller keeps values live across one prefixed call in more
 * registers than the callee must preserve: 14 integers (there are 6
 * callee-saved general registers) and 16 doubles (no SSE register survives
 * a call), and reads a global before and after it.  The target
 * (clobber_asm.S) writes garbage into every caller-saved register and
 * changes the global.  If the asm's clobber list missed a register (or
 * "memory"), the compiler would keep a value there across the call and the
 * sum would be wrong.  Exit status 0 when the sums agree, 1 otherwise.
 * tests/test_runtime_prefix.py builds it with each clobber removed in turn.
 */
#include <stdio.h>

#include "static_call.h"

long clobber_target(long x);
long clobber_counter;

DEFINE_STATIC_CALL(sc_clobber, clobber_target);

#define INTS(X)	X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define DBLS(X)	X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) \
		X(14) X(15)

/* a and d are opaque to the compiler (volatile loads in main), so every
 * value below is computed at run time and live across the call */
#define DEF_I(n)	long i##n = a * (n + 3) + (a >> (n % 5));
#define DEF_D(n)	double d##n = d * (n + 2) + (double)(n * n);
#define SUM_I(n)	s += i##n * (n + 1);
#define SUM_D(n)	f += d##n * (n + 1);

__attribute__((noinline)) long with_call(long a, double d)
{
	INTS(DEF_I)
	DBLS(DEF_D)
	long before = clobber_counter, s = 0, r;
	double f = 0;

	r = static_call_prefixed(sc_clobber, a);
	INTS(SUM_I)
	DBLS(SUM_D)
	return s + r + (clobber_counter - before) * 1000 + (long)f;
}

/* the same without a call: what with_call must return */
__attribute__((noinline)) long without_call(long a, double d)
{
	INTS(DEF_I)
	DBLS(DEF_D)
	long s = 0;
	double f = 0;

	INTS(SUM_I)
	DBLS(SUM_D)
	return s + (a + 1) + 1000 + (long)f;
}

int main(void)
{
	volatile long va = 12345;
	volatile double vd = 0.75;
	int bad = 0;

	for (long k = 0; k < 100; k++) {
		long got = with_call(va + k, vd + k), want = without_call(va + k, vd + k);

		if (got != want) {
			if (!bad)
				printf("clobber: with_call(%ld) = %ld, want %ld\n", va + k, got, want);
			bad++;
		}
	}
	printf("clobber: %d of 100 calls wrong\n", bad);
	return bad ? 1 : 0;
}
