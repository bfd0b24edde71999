/*
 * demo.c - call sites of the static calls sc_op and sc_scale (hooks.c), and a
 * main() that retargets both twice and shows what happened to every site.
 *
 *   ./demo [--policy seed|kernel] [--peek OFFSET]...
 *
 * --policy names the scall-objtool policy the table was written under (the
 * default, seed, makes the runtime check the cache-line rule at run time).
 * --peek OFFSET (hex, relative to __executable_start) prints the E8/E9
 * instruction at that address after each phase: the tests use it to read
 * back sites that are not in the table.
 *
 * Sites: plain calls (compute, sum_loop, hooks_apply, run), a call in a
 * cold function and one in another text section, a tail call in C
 * (tail_scale: a jmp at -O2, a call at -O0), and two sites in assembly whose
 * placement does not depend on the compiler:
 *   asm_tail       jmp __SCT__sc_scale at offset 3 of a 16-aligned section:
 *                  a tail call that never crosses a line (seed: fallback
 *                  "tail-call" unless --allow-tail);
 *   crossing_call  call __SCT__sc_scale at offset 60 of a 64-aligned
 *                  section: its 5 bytes always cross a line (seed: fallback
 *                  "crosses-cache-line"; kernel: listed and rewritten).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"

extern char __executable_start[];

/*
 * 64-byte alignment for the hottest sites' functions: it makes the section
 * they are in 64-aligned, so scall-objtool knows their offsets modulo the
 * cache line exactly and can prove "never crosses" (gcc -O0 does not align
 * functions at all, and -O2 only to 16, which leaves a quarter of the
 * offsets "depends").
 */
#define SC_LINE_ALIGNED	__attribute__((aligned(STATIC_CALL_CACHE_LINE)))

volatile int sink;
volatile int in_a = 6, in_b = 7, in_n = 5, in_x = 4;

SC_LINE_ALIGNED __attribute__((noinline)) int compute(int a, int b)
{
	int r = static_call(sc_op)(a, b);

	sink = r;
	return r * 10 + static_call(sc_scale)(b);
}

SC_LINE_ALIGNED __attribute__((noinline)) int sum_loop(int n)
{
	int s = 1;

	for (int i = 1; i <= n; i++) {
		s = static_call(sc_op)(s, i);
		sink = s;
	}
	return s;
}

/* A tail call: jmp __SCT__sc_scale with -O2. */
__attribute__((noinline)) int tail_scale(int x)
{
	return static_call(sc_scale)(x + 1);
}

__attribute__((noinline, cold)) int cold_path(int x)
{
	int r = static_call(sc_op)(x, 3);

	sink = r;
	return r + 1;
}

__attribute__((noinline, section(".text.other"))) int other_section(int x)
{
	int r = static_call(sc_scale)(x);

	sink = r;
	return r + 2;
}

int asm_tail(int x);		/* scale(x + 3) */
int crossing_call(int x);	/* scale(x) + 1 */

__asm__(
	".pushsection .text.asm_tail, \"ax\", @progbits\n"
	"\t.p2align 4\n"
	"\t.globl asm_tail\n"
	"\t.type asm_tail, @function\n"
	"asm_tail:\n"
	"\taddl $3, %edi\n"			/* 3 bytes */
	"\tjmp __SCT__sc_scale\n"		/* E9 rel32 at offset 3 */
	"\t.size asm_tail, . - asm_tail\n"
	".popsection\n"

	".pushsection .text.crossing_call, \"ax\", @progbits\n"
	"\t.p2align 6\n"
	"\t.globl crossing_call\n"
	"\t.type crossing_call, @function\n"
	"crossing_call:\n"
	"\tsubq $8, %rsp\n"			/* 4 bytes; keeps %rsp 16-aligned */
	"\t.rept 56\n\tnop\n\t.endr\n"		/* 56 one-byte nops: instructions,
						 * so call alignment can pad */
	"\tcall __SCT__sc_scale\n"		/* E8 rel32 at offset 60..64 */
	"\taddl $1, %eax\n"
	"\taddq $8, %rsp\n"
	"\tret\n"
	"\t.size crossing_call, . - crossing_call\n"
	".popsection\n");

/* ------------------------------------------------------------ reporting */

struct named { const char *name; const void *addr; };

static const struct named known[] = {
	{ "__SCT__sc_op", (const void *)&__SCT__sc_op },
	{ "__SCT__sc_scale", (const void *)&__SCT__sc_scale },
	{ "op_add", (const void *)op_add },
	{ "op_mul", (const void *)op_mul },
	{ "op_sub", (const void *)op_sub },
	{ "scale_double", (const void *)scale_double },
	{ "scale_square", (const void *)scale_square },
	{ "scale_neg", (const void *)scale_neg },
	{ "sc_op", &__SCK__sc_op },
	{ "sc_scale", &__SCK__sc_scale },
};

static const char *name_of(const void *p)
{
	static char buf[4][32];
	static int next;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i].addr == p)
			return known[i].name;
	next = (next + 1) % 4;
	snprintf(buf[next], sizeof(buf[next]), "+%#lx", (unsigned long)((const char *)p - __executable_start));
	return buf[next];
}

static unsigned long rel(const void *p)
{
	return (unsigned long)((const char *)p - __executable_start);
}

static void print_insn(const char *what, const unsigned char *insn)
{
	void *dest = static_call_insn_dest(insn);

	printf("%s +%#lx op %02x dest %s cross %d\n", what, rel(insn), insn[0],
	       dest ? name_of(dest) : "-", static_call_crosses_line(insn));
}

/* Every table entry: its key, tail flag, and the instruction it points at. */
static void print_table(void)
{
	const struct static_call_site *s, *b = static_call_sites_begin(),
		*e = static_call_sites_end();
	char what[96];

	printf("entries %ld\n", (long)(e - b));
	for (s = b; s < e; s++) {
		snprintf(what, sizeof(what), "entry %ld key %s tail %lu site", (long)(s - b),
			 name_of(static_call_site_key(s)), static_call_site_flags(s));
		print_insn(what, static_call_site_addr(s));
	}
}

static long entries_of(const struct static_call_key *key)
{
	long n = 0;

	for (const struct static_call_site *s = static_call_sites_begin();
	     s < static_call_sites_end(); s++)
		n += static_call_site_key(s) == key;
	return n;
}

/* ------------------------------------------------------------ the demo */

typedef int (*op_fn)(int, int);
typedef int (*scale_fn)(int);

static int failed;

/* Run every site and compare with the same formulas through plain pointers. */
static void run(const char *phase, op_fn op, scale_fn scale)
{
	int a = in_a, b = in_b, n = in_n, x = in_x;
	int s = 1;

	for (int i = 1; i <= n; i++)
		s = op(s, i);

	struct { const char *name; int got, want; } r[] = {
		{ "compute", compute(a, b), op(a, b) * 10 + scale(b) },
		{ "sum_loop", sum_loop(n), s },
		{ "tail_scale", tail_scale(x), scale(x + 1) },
		{ "cold_path", cold_path(x), op(x, 3) + 1 },
		{ "other_section", other_section(x), scale(x) + 2 },
		{ "asm_tail", asm_tail(x), scale(x + 3) },
		{ "crossing_call", crossing_call(x), scale(x) + 1 },
		{ "hooks_apply", hooks_apply(x), op(x, x) + 1 },
		{ "run", static_call(sc_op)(a, x), op(a, x) },
	};
	int ok = 1;

	printf("results %s:", phase);
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		printf(" %s=%d", r[i].name, r[i].got);
		if (r[i].got != r[i].want) {
			printf("(want %d)", r[i].want);
			ok = 0;
		}
	}
	printf(" %s\n", ok ? "ok" : "MISMATCH");
	failed |= !ok;
}

/* static_call_update() and what it did. */
#define UPDATE(name, func)						\
	report_update(#name, &STATIC_CALL_KEY(name), #func,		\
		      static_call_update(name, func))

static void show(const char *phase);

static void report_update(const char *name, const struct static_call_key *key,
			  const char *func, int rewritten)
{
	long listed = entries_of(key);

	if (rewritten < 0) {
		/* nothing was written: show that everything is as it was */
		printf("update %s -> %s: FAILED (%s)\n", name, func, strerror(errno));
		show("failed");
		exit(1);
	}
	printf("update %s -> %s: entries %ld rewritten %d refused %ld\n",
	       name, func, listed, rewritten, listed - rewritten);
}

static char *peek[64];
static int npeek;

/* Mappings that are writable and executable at once (W^X: there should be none). */
static int wx_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], perms[8];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %7s", perms) == 1 && perms[1] == 'w' && perms[2] == 'x')
			n++;
	fclose(f);
	return n;
}

static void show(const char *phase)
{
	printf("phase %s\n", phase);
	printf("tramp sc_op -> %s\n", name_of(static_call_insn_dest(__SCK__sc_op.tramp)));
	printf("tramp sc_scale -> %s\n", name_of(static_call_insn_dest(__SCK__sc_scale.tramp)));
	print_table();
	for (int i = 0; i < npeek; i++)
		print_insn("peek", (unsigned char *)__executable_start + strtoul(peek[i], NULL, 16));
	printf("wx-mappings %d\n", wx_mappings());
}

int main(int argc, char **argv)
{
	enum static_call_policy policy = STATIC_CALL_POLICY_SEED;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "kernel"))
				policy = STATIC_CALL_POLICY_KERNEL;
			else if (strcmp(argv[i], "seed"))
				goto usage;
		} else if (!strcmp(argv[i], "--peek") && i + 1 < argc && npeek < 64) {
			peek[npeek++] = argv[++i];
		} else {
			goto usage;
		}
	}
	if (static_call_init(policy)) {
		perror("static_call_init");
		return 1;
	}
	printf("policy %s\n", static_call_policy() == STATIC_CALL_POLICY_SEED ? "seed" : "kernel");

	show("initial");
	run("initial", op_add, scale_double);

	UPDATE(sc_op, op_mul);
	UPDATE(sc_scale, scale_square);
	show("update1");
	run("update1", op_mul, scale_square);

	/* Again: now the rewritten sites call the previous target directly. */
	UPDATE(sc_op, op_sub);
	UPDATE(sc_scale, scale_neg);
	show("update2");
	run("update2", op_sub, scale_neg);

	return failed;
usage:
	fprintf(stderr, "usage: %s [--policy seed|kernel] [--peek HEXOFFSET]...\n", argv[0]);
	return 2;
}
