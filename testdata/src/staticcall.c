/*
 * staticcall.c - static calls as C code uses them, compiled by the tests at
 * -O0, -O2 and -Os, with and without -ffunction-sections.
 *
 * Three static calls: sc_alpha, sc_beta (int (*)(int)) and sc_notify
 * (void (*)(const char *, int)).  Several plain calls in different functions,
 * a call in a loop, and one tail call (sc_tail: "return static_call(...)(x)",
 * a jmp from -O2 and -Os).  An ordinary external call (ext_log) and a call
 * through a function pointer are not static calls.
 */
#include "static_call.h"

int alpha_impl(int);
int beta_impl(int);
void notify_impl(const char *, int);
void ext_log(const char *, int);

DECLARE_STATIC_CALL(sc_alpha, alpha_impl);
DECLARE_STATIC_CALL(sc_beta, beta_impl);
DECLARE_STATIC_CALL(sc_notify, notify_impl);

int (*volatile plain_ptr)(int);

int sc_one(int x)
{
	int r = static_call(sc_alpha)(x);

	ext_log("one", r);
	return r + 1;
}

int sc_two(int x)
{
	int a = static_call(sc_alpha)(x);
	int b = static_call(sc_beta)(a);

	static_call(sc_notify)("two", a + b);
	return a * b;
}

int sc_loop(int n)
{
	int s = 0;

	for (int i = 0; i < n; i++)
		s += static_call(sc_beta)(i) ^ plain_ptr(i);
	return s;
}

int sc_tail(int x)
{
	if (x < 0)
		x = -x;
	return static_call(sc_beta)(x * 3);
}

void sc_cond(int x)
{
	if (x > 10)
		static_call(sc_notify)("big", x);
	else
		ext_log("small", x);
}
