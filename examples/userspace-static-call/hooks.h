/* hooks.h - the demo's two static calls and their possible targets. */
#ifndef DEMO_HOOKS_H
#define DEMO_HOOKS_H

#include "static_call.h"

int op_add(int a, int b);
int op_mul(int a, int b);
int op_sub(int a, int b);

int scale_double(int x);
int scale_square(int x);
int scale_neg(int x);

DECLARE_STATIC_CALL(sc_op, op_add);		/* int (*)(int, int) */
DECLARE_STATIC_CALL(sc_scale, scale_double);	/* int (*)(int) */

int hooks_apply(int x);

#endif
