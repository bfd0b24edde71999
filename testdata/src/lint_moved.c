/*
 * lint_moved.c - lint.c with unrelated code added above the sites: a
 * rebuilt object whose sites moved (other offsets in .text, other source
 * lines) but did not change.  Below the marked block it is lint.c.
 */
#include "static_call.h"

/* unrelated code, added above the static calls */
static unsigned long moved_table[16];

unsigned long moved_checksum(const unsigned char *p, unsigned long n)
{
	unsigned long a = 1, b = 0;

	for (unsigned long i = 0; i < n; i++) {
		a = (a + p[i]) % 65521;
		b = (b + a) % 65521;
	}
	return (b << 16) | a;
}

void moved_fill(unsigned long seed)
{
	for (int i = 0; i < 16; i++) {
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		moved_table[i] = seed >> 33;
	}
}

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
