/*
 * demo.c - the README quick start's object: one static call, demo_hook,
 * called three times and tail-called once.
 *
 * Built into testdata/prebuilt/demo.o with:
 *   gcc -O2 -g -c -o testdata/prebuilt/demo.o testdata/src/demo.c
 */
#include "static_call.h"

int demo_impl(int);
DECLARE_STATIC_CALL(demo_hook, demo_impl);

int demo_sum(int a, int b)
{
	int x = static_call(demo_hook)(a);
	int y = static_call(demo_hook)(b);

	return x + y;
}

int demo_twice(int a)
{
	int x = static_call(demo_hook)(a);

	return x * 2;
}

int demo_forward(int a)
{
	return static_call(demo_hook)(a + 1);
}
