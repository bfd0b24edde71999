/*
 * hooks.c - defines the static calls sc_op and sc_scale (keys and
 * trampolines), their targets, and one more call site, so that the program's
 * table is merged by the linker from two objects.
 */
#include "hooks.h"

int op_add(int a, int b) { return a + b; }
int op_mul(int a, int b) { return a * b; }
int op_sub(int a, int b) { return a - b; }

int scale_double(int x) { return 2 * x; }
int scale_square(int x) { return x * x; }
int scale_neg(int x) { return -x; }

DEFINE_STATIC_CALL(sc_op, op_add);
DEFINE_STATIC_CALL(sc_scale, scale_double);

volatile int hooks_sink;

__attribute__((aligned(STATIC_CALL_CACHE_LINE))) int hooks_apply(int x)
{
	int r = static_call(sc_op)(x, x);

	hooks_sink = r;
	return r + 1;
}
