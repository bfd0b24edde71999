/*
 * bench.c - calls per second through a retpoline function pointer, a plain
 * function pointer, the static call's trampoline and a patched site, and
 * the cost of an update, under one patcher.
 *
 *   ./bench [--patcher store|breakpoint|prefix] [--calls N] [--runs R]
 *           [--updates U] [--callers C]
 *
 * Sets up the patcher, retargets sc_bench once and checks which loop it
 * patched: the E8 site (loop_direct) for store and breakpoint, the 2E E8
 * site (loop_prefixed) for prefix and breakpoint; a site the patcher does
 * not own keeps calling the trampoline.  Then runs each loop N calls
 * (default 10^8), R times (default 7) in turn, and prints the median rate
 * of each and its ratio to the patched direct call.
 *
 * Then U updates (default 20000) while C threads (default 1) call through
 * the patcher's own site in a loop: each update is timed from the call of
 * static_call_update() to its return, the point from which every caller is
 * guaranteed to reach the new target (each patcher returns only then).
 * Prints `updates PATCHER: U updates in T s, R updates/s, latency median
 * M us, p99 P us` and checks that the callers only ever reached a target.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "static_call.h"

__attribute__((noinline)) long bench_target(long x)
{
	return x ^ 0x5a;
}

__attribute__((noinline)) long bench_target2(long x)
{
	return x ^ 0x5a;
}

DEFINE_STATIC_CALL(sc_bench, bench_target);
long (*volatile bench_fp)(long) = bench_target;

long loop_retpoline(long), loop_pointer(long), loop_trampoline(long), loop_direct(long),
	loop_prefixed(long);

static const struct {
	const char *name;
	long (*loop)(long);
} variants[] = {
	{ "retpoline function pointer", loop_retpoline },
	{ "function pointer", loop_pointer },
	{ "trampoline", loop_trampoline },
	{ "patched direct call", loop_direct },
	{ "patched cs-prefixed call", loop_prefixed },
};
#define NV	(sizeof(variants) / sizeof(variants[0]))
#define DIRECT	3
#define PREFIXED	4

/* The first call in the loop's code (its only one): E8 or 2E E8. */
static const unsigned char *first_call(const void *fn)
{
	const unsigned char *p = fn;

	for (int i = 0; i < 128; i++)
		if (p[i] == 0xe8 || static_call_insn_prefixed(p + i))
			return p + i;
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
	fprintf(stderr, "usage: %s [--patcher store|breakpoint|prefix] [--calls N] [--runs R] "
		"[--updates U] [--callers C]\n", argv0);
	exit(2);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static volatile int stop_callers;
static long (*caller_loop)(long);

#define CALLER_N	1000

static void *caller(void *arg)
{
	long bad = 0, want = *(long *)arg;

	while (!stop_callers)
		/* both targets compute the same: the sum checks every landing */
		bad += caller_loop(CALLER_N) != want;
	return (void *)bad;
}

int main(int argc, char **argv)
{
	long calls = 100000000, runs = 7, updates = 20000, callers = 1, want = 0;
	enum static_call_patcher patcher = STATIC_CALL_PATCHER_STORE;
	const char *pname = "store";
	int rewritten;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--calls") && i + 1 < argc)
			calls = atol(argv[++i]);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atol(argv[++i]);
		else if (!strcmp(argv[i], "--updates") && i + 1 < argc)
			updates = atol(argv[++i]);
		else if (!strcmp(argv[i], "--callers") && i + 1 < argc)
			callers = atol(argv[++i]);
		else if (!strcmp(argv[i], "--patcher") && i + 1 < argc)
			pname = argv[++i];
		else
			usage(argv[0]);
	}
	if (!strcmp(pname, "store"))
		patcher = STATIC_CALL_PATCHER_STORE;
	else if (!strcmp(pname, "breakpoint"))
		patcher = STATIC_CALL_PATCHER_BREAKPOINT;
	else if (!strcmp(pname, "prefix"))
		patcher = STATIC_CALL_PATCHER_PREFIX;
	else
		usage(argv[0]);
	if (calls < 1 || runs < 1 || runs > 1000 || updates < 1 || updates > 10000000 ||
	    callers < 0 || callers > 64)
		usage(argv[0]);

	if (static_call_setup(STATIC_CALL_POLICY_SEED, patcher)) {
		perror("static_call_setup");
		return 2;
	}
	rewritten = static_call_update(sc_bench, bench_target);
	{
		const unsigned char *d = first_call(loop_direct), *p = first_call(loop_prefixed);
		int d_own = static_call_patcher_owns(patcher, d);
		int p_own = static_call_patcher_owns(patcher, p);
		void *d_want = d_own ? (void *)bench_target : (void *)&__SCT__sc_bench;
		void *p_want = p_own ? (void *)bench_target : (void *)&__SCT__sc_bench;

		if (rewritten != d_own + p_own || !static_call_insn_prefixed(p) ||
		    static_call_insn_dest(d) != d_want || static_call_insn_dest(p) != p_want ||
		    static_call_insn_dest(first_call(loop_trampoline)) != (void *)&__SCT__sc_bench) {
			fprintf(stderr, "bench: the loops are not patched as the %s patcher "
				"should (%d sites rewritten)\n", pname, rewritten);
			return 1;
		}
		printf("bench %s: %ld calls per run, %ld runs; patched: %s%s%s; the trampoline "
		       "loop's call, and any site not the patcher's, on the trampoline\n",
		       pname, calls, runs, d_own ? "the E8 site" : "",
		       d_own && p_own ? " and " : "", p_own ? "the 2E E8 site" : "");
		caller_loop = p_own ? loop_prefixed : loop_direct;
	}

	double (*rate)[runs] = calloc(NV, sizeof(*rate));

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
	for (unsigned v = 0; v < NV; v++) {
		const unsigned char *site = v == DIRECT ? first_call(loop_direct) :
			v == PREFIXED ? first_call(loop_prefixed) : NULL;
		const char *note = site && !static_call_patcher_owns(patcher, site) ?
			"  (not this patcher's: via the trampoline)" : "";

		printf("%-28s %8.1f M calls/s  %.2fx the patched direct call's rate "
		       "(%.2f ns/call)%s\n", variants[v].name, med[v] / 1e6, med[v] / med[DIRECT],
		       1e9 / med[v], note);
	}

	/* Updates, with callers running through the patcher's own site. */
	pthread_t th[callers > 0 ? callers : 1];
	double *lat = calloc(updates, sizeof(double)), t0;
	long caller_want = 0, bad = 0;

	for (long i = 0; i < CALLER_N; i++)
		caller_want += bench_target(i);
	for (long i = 0; i < callers; i++)
		pthread_create(&th[i], NULL, caller, &caller_want);
	t0 = now();
	for (long u = 0; u < updates; u++) {
		double t = now();

		if (static_call_update(sc_bench, u % 2 ? bench_target : bench_target2) < 0) {
			perror("static_call_update");
			return 1;
		}
		lat[u] = now() - t;
	}
	t0 = now() - t0;
	stop_callers = 1;
	for (long i = 0; i < callers; i++) {
		void *b;

		pthread_join(th[i], &b);
		bad += (long)b;
	}
	if (bad) {
		fprintf(stderr, "bench: %ld wrong sums while updating\n", bad);
		return 1;
	}
	qsort(lat, updates, sizeof(double), cmp);
	printf("updates %s: %ld updates in %.3f s with %ld caller threads, %.0f updates/s, "
	       "latency median %.2f us, p99 %.2f us; %lu traps at a site\n", pname, updates, t0,
	       callers, updates / t0, lat[updates / 2] * 1e6, lat[updates * 99 / 100] * 1e6,
	       static_call_emulated());
	return 0;
}
