/*
 * prefixed.c - a program of its own that makes its static calls only
 * through static_call_prefixed() (cs-prefixed call sites, 2E E8), with no,
 * one and six arguments, a void and a pointer result, run under the prefix
 * patcher while other threads call through the sites.
 *
 *   cc -O2 -I"$RT" -c prefixed.c && scall-objtool write --allow-prefixed prefixed.o
 *   cc -pthread -o prefixed prefixed.o static_call.o -Wl,-T,"$RT/static_call_sites.ld"
 *   ./prefixed [--updates U] [--threads N]
 *
 * Prints `prefixed: S sites in the table, P cs-prefixed, D on the current
 * target; C calls, U updates, W wrong` and exits 0 when every table entry
 * is a cs-prefixed call that ends on its key's current target, every
 * update rewrote every site of its key, and no call returned a wrong value.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "static_call.h"

static char buf_a[1], buf_b[1];
static unsigned long noted[2];

__attribute__((noinline)) long add_1(long x) { return x + 1; }
__attribute__((noinline)) long add_2(long x) { return x + 2; }
__attribute__((noinline)) long mix_a(long a, long b, long c, long d, long e, long f)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}
__attribute__((noinline)) long mix_b(long a, long b, long c, long d, long e, long f)
{
	return mix_a(a, b, c, d, e, f) + 1000;
}
__attribute__((noinline)) void note_a(long x) { __atomic_fetch_add(&noted[0], x & 1, __ATOMIC_RELAXED); }
__attribute__((noinline)) void note_b(long x) { __atomic_fetch_add(&noted[1], x & 1, __ATOMIC_RELAXED); }
__attribute__((noinline)) long zero_a(void) { return 7; }
__attribute__((noinline)) long zero_b(void) { return 9; }
__attribute__((noinline)) char *pick_a(char *p) { return p ? buf_a : NULL; }
__attribute__((noinline)) char *pick_b(char *p) { return p ? buf_b : NULL; }

DEFINE_STATIC_CALL(sc_add, add_1);
DEFINE_STATIC_CALL(sc_mix, mix_a);
DEFINE_STATIC_CALL(sc_note, note_a);
DEFINE_STATIC_CALL(sc_zero, zero_a);
DEFINE_STATIC_CALL(sc_pick, pick_a);

/* the call sites: one cs-prefixed call each */
__attribute__((noinline)) long use_add(long x) { return static_call_prefixed(sc_add, x) * 3; }
__attribute__((noinline)) long use_mix(long x)
{
	return static_call_prefixed(sc_mix, x, x + 1, x + 2, x + 3, x + 4, x + 5);
}
__attribute__((noinline)) void use_note(long x) { static_call_prefixed(sc_note, x); }
__attribute__((noinline)) long use_zero(void) { return static_call_prefixed(sc_zero); }
__attribute__((noinline)) char *use_pick(char *p) { return static_call_prefixed(sc_pick, p); }

static volatile int stop;
static unsigned long calls, wrong;

static void *caller(void *arg)
{
	long x = (long)(uintptr_t)arg;
	unsigned long n = 0, bad = 0;

	while (!stop) {
		long a = use_add(x), m = use_mix(x), z = use_zero(), want_m = mix_a(x, x + 1, x + 2,
			x + 3, x + 4, x + 5);
		char *p = use_pick(buf_a);

		use_note(x);
		bad += (a != 3 * (x + 1) && a != 3 * (x + 2)) + (m != want_m && m != want_m + 1000) +
			(z != 7 && z != 9) + (p != buf_a && p != buf_b);
		n += 5;
		x++;
	}
	__atomic_fetch_add(&calls, n, __ATOMIC_RELAXED);
	__atomic_fetch_add(&wrong, bad, __ATOMIC_RELAXED);
	return NULL;
}

int main(int argc, char **argv)
{
	long updates = 20000, nthreads = 2, keys_sites[5] = { 0 }, upd = 0;
	int sites = 0, prefixed = 0, direct = 0, short_update = 0;
	struct static_call_key *keys[5] = { &__SCK__sc_add, &__SCK__sc_mix, &__SCK__sc_note,
		&__SCK__sc_zero, &__SCK__sc_pick };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--updates") && i + 1 < argc)
			updates = atol(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--updates U] [--threads N]\n", argv[0]);
			return 2;
		}
	}
	if (updates < 1 || nthreads < 1 || nthreads > 64)
		return 2;
	if (static_call_setup(STATIC_CALL_POLICY_SEED, STATIC_CALL_PATCHER_PREFIX)) {
		perror("static_call_setup");
		return 2;
	}
	for (const struct static_call_site *e = static_call_sites_begin();
	     e < static_call_sites_end(); e++)
		for (int k = 0; k < 5; k++)
			keys_sites[k] += static_call_site_key(e) == keys[k];

	pthread_t th[nthreads];

	for (long i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, caller, (void *)(uintptr_t)(i * 1000003));
	for (long u = 0; u < updates; u++) {
		int r[5], b = u % 2;

		r[0] = static_call_update(sc_add, b ? add_2 : add_1);
		r[1] = static_call_update(sc_mix, b ? mix_b : mix_a);
		r[2] = static_call_update(sc_note, b ? note_b : note_a);
		r[3] = static_call_update(sc_zero, b ? zero_b : zero_a);
		r[4] = static_call_update(sc_pick, b ? pick_b : pick_a);
		for (int k = 0; k < 5; k++) {
			if (r[k] < 0) {
				perror("static_call_update");
				return 1;
			}
			short_update += r[k] != keys_sites[k];	/* every site of the key */
		}
		upd += 5;
	}
	stop = 1;
	for (long i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);

	for (const struct static_call_site *e = static_call_sites_begin();
	     e < static_call_sites_end(); e++) {
		const unsigned char *insn = static_call_site_addr(e);

		sites++;
		prefixed += static_call_insn_prefixed(insn);
		direct += static_call_insn_prefixed(insn) &&
			static_call_insn_dest(insn) == static_call_site_key(e)->func;
	}
	printf("prefixed: %d sites in the table, %d cs-prefixed, %d on the current target; "
	       "%lu calls, %ld updates, %lu wrong; %lu traps at a site; %d short updates\n",
	       sites, prefixed, direct, calls, upd, wrong, static_call_emulated(), short_update);
	return sites == 5 && prefixed == sites && direct == sites && !wrong && !short_update &&
		noted[0] + noted[1] > 0 ? 0 : 1;
}
