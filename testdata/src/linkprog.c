/* Link-validity test program for scall-objtool (tests/test_linkvalid.py).
 *
 * Two static calls, `a` and `b`: trampolines __SCT__a/__SCT__b live in
 * linktramp.S (section .static_call.text, each a `jmp target`), the keys
 * __SCK__a/__SCK__b are global data objects defined here.  The functions
 * below call the trampolines directly (calls) and in tail position (gcc -O2
 * turns `return __SCT__b(...)` into a jmp).  After scall-objtool has written
 * the .static_call_sites table the program must still link and print the
 * same results; main() also counts the table entries through the symbols
 * __start_static_call_sites/__stop_static_call_sites that
 * static_call_sites.ld defines.
 */
#include <stdio.h>

struct static_call_key { void *func; };
struct static_call_site { int addr; int key; };

int target_a(int x);
int target_b(int x, int y);

struct static_call_key __SCK__a = { (void *)target_a };
struct static_call_key __SCK__b = { (void *)target_b };

/* The trampolines and two hand-written sites (linktramp.S). */
extern int __SCT__a(int x);
extern int __SCT__b(int x, int y);
extern int cond_tail(int x);   /* x ? __SCT__a(x) : -1, via jne __SCT__a */
extern int asm_tail(int x);    /* __SCT__b(x, 7), via jmp __SCT__b */

extern const struct static_call_site __start_static_call_sites[];
extern const struct static_call_site __stop_static_call_sites[];

volatile int sink;

__attribute__((noinline)) int target_a(int x)
{
	return 2 * x + 1;
}

__attribute__((noinline)) int target_b(int x, int y)
{
	return 10 * x + y;
}

/* A plain call. */
__attribute__((noinline)) int call_a(int x)
{
	return __SCT__a(x) + 1;
}

/* A tail call (jmp __SCT__b). */
__attribute__((noinline)) int tail_b(int x)
{
	return __SCT__b(x, 3);
}

/* Calls in a loop, both keys. */
__attribute__((noinline)) int loop_ab(int n)
{
	int s = 0;
	for (int i = 0; i < n; i++) {
		s += __SCT__a(i);
		sink = s;
		s += __SCT__b(i, 1);
	}
	return s;
}

/* A call from another text section. */
__attribute__((noinline, section(".text.other"))) int other_section(int x)
{
	int r = __SCT__b(x, 5);
	sink = r;
	return r + __SCT__a(r);
}

/* A call from a cold section. */
__attribute__((noinline, cold)) int cold_path(int x)
{
	int r = __SCT__a(x);
	sink = r;
	return r - 1;
}

int main(int argc, char **argv)
{
	int k = argc - 1;   /* 0 when run without arguments */
	long n = __stop_static_call_sites - __start_static_call_sites;

	printf("call_a %d\n", call_a(5 + k));
	printf("tail_b %d\n", tail_b(4 + k));
	printf("loop_ab %d\n", loop_ab(6 + k));
	printf("other_section %d\n", other_section(2 + k));
	printf("cold_path %d\n", cold_path(9 + k));
	printf("cond_tail %d %d\n", cond_tail(3 + k), cond_tail(k));
	printf("asm_tail %d\n", asm_tail(8 + k));
	printf("direct %d\n", __SCT__a(100 + k));
	printf("sites %ld\n", n);
	return 0;
}
