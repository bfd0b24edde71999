/*
 * lint.c - the `check` / baseline / SARIF tests' object: one static call,
 * lint_hook, called three times and tail-called once (the tail call is the
 * one fallback site under the default seed policy).
 *
 * lint_moved.c is the same code with unrelated code added above the sites;
 * -DLINT_EXTRA adds one more tail call (a new fallback site).
 */
#include "static_call.h"

int lint_impl(int);
DECLARE_STATIC_CALL(lint_hook, lint_impl);

int lint_sum(int a, int b)
{
	int x = static_call(lint_hook)(a);
	int y = static_call(lint_hook)(b);

	return x + y;
}

int lint_twice(int a)
{
	int x = static_call(lint_hook)(a);

	return x * 2;
}

int lint_forward(int a)
{
	return static_call(lint_hook)(a + 1);
}

#ifdef LINT_EXTRA
int lint_extra(int a)
{
	return static_call(lint_hook)(a - 1);
}
#endif
