/*
 * bench.c - calls per second through a retpoline function pointer, a plain
 * function pointer, the static call's trampoline and a patched direct call.
 *
 *   ./bench [--calls N] [--runs R]
 *
 * Retargets sc_bench once (store patcher), checks that the listed loop now
 * calls the target directly and the unlisted one the trampoline, then runs
 * each loop N calls (default 10^8), R times (default 7) in turn, and prints
 * the median rate of each and its ratio to the patched direct call.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "static_call.h"

__attribute__((noinline)) long bench_target(long x)
{
	return x ^ 0x5a;
}

DEFINE_STATIC_CALL(sc_bench, bench_target);
long (*volatile bench_fp)(long) = bench_target;

long loop_retpoline(long), loop_pointer(long), loop_trampoline(long), loop_direct(long);

static const struct {
	const char *name;
	long (*loop)(long);
} variants[] = {
	{ "retpoline function pointer", loop_retpoline },
	{ "function pointer", loop_pointer },
	{ "trampoline", loop_trampoline },
	{ "patched direct call", loop_direct },
};
#define NV	(sizeof(variants) / sizeof(variants[0]))

/* The destination of the first E8 in the loop's code (its only call). */
static const void *first_call(const void *fn)
{
	const unsigned char *p = fn;

	for (int i = 0; i < 128; i++)
		if (p[i] == 0xe8)
			return static_call_insn_dest(p + i);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--calls N] [--runs R]\n", argv0);
	exit(2);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long calls = 100000000, runs = 7, want = 0;
	int rewritten;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--calls") && i + 1 < argc)
			calls = atol(argv[++i]);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atol(argv[++i]);
		else
			usage(argv[0]);
	}
	if (calls < 1 || runs < 1 || runs > 1000)
		usage(argv[0]);

	if (static_call_init(STATIC_CALL_POLICY_SEED)) {
		perror("static_call_init");
		return 2;
	}
	rewritten = static_call_update(sc_bench, bench_target);
	if (rewritten < 1 || first_call(loop_direct) != (void *)bench_target ||
	    first_call(loop_trampoline) != (void *)&__SCT__sc_bench) {
		fprintf(stderr, "bench: the direct loop is not patched (%d sites rewritten)\n",
			rewritten);
		return 1;
	}
	printf("bench: %ld calls per run, %ld runs; direct loop's call patched, "
	       "trampoline loop's left on the trampoline\n", calls, runs);

	double rate[NV][runs];

	for (long i = 0; i < calls; i++)
		want += bench_target(i);
	for (long r = -1; r < runs; r++) {	/* run -1 warms up */
		for (unsigned v = 0; v < NV; v++) {
			double t = now();
			long got = variants[v].loop(calls);

			t = now() - t;
			if (got != want) {
				fprintf(stderr, "bench: %s: sum %ld, want %ld\n", variants[v].name, got, want);
				return 1;
			}
			if (r >= 0)
				rate[v][r] = calls / t;
		}
	}
	double med[NV];

	for (unsigned v = 0; v < NV; v++) {
		qsort(rate[v], runs, sizeof(double), cmp);
		med[v] = runs % 2 ? rate[v][runs / 2] : (rate[v][runs / 2 - 1] + rate[v][runs / 2]) / 2;
	}
	for (unsigned v = 0; v < NV; v++)
		printf("%-28s %8.1f M calls/s  %.2fx the patched direct call's rate "
		       "(%.2f ns/call)\n", variants[v].name, med[v] / 1e6, med[v] / med[NV - 1],
		       1e9 / med[v]);
	return 0;
}
