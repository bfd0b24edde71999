/*
 * nostatic.c - an ordinary object with no static calls: calls, a tail call,
 * a function pointer and data, and no __SCT__ symbol anywhere.  The tool
 * must report nothing and `write` must leave it byte-identical.
 */
#include <string.h>

extern int helper(int);
extern void sink(const char *, unsigned long);

static const char banner[] = "no static calls here";
int (*hook)(int) = helper;

int ns_sum(const int *v, int n)
{
	int s = 0;

	for (int i = 0; i < n; i++)
		s += helper(v[i]);
	sink(banner, strlen(banner));
	return s;
}

int ns_tail(int x)
{
	return hook(x + 1);
}

int ns_direct_tail(int x)
{
	return helper(x * 2);
}
