/*
 * stress.c - retarget static calls while other threads call through them.
 *
 *   ./stress --patcher store|breakpoint|prefix|store-crossing|prefix-early
 *            [--seconds S] [--threads N] [--update-rate R] [--caller-nice K]
 *
 * N caller threads (default: twice the CPU count) call every site of
 * stress.h in a loop and check each result: it must come from one of the
 * three targets of the site's static call (the target's ID is in the low
 * byte) and be that target's value for the argument.  One more thread
 * retargets sc_a and sc_b in turn, each to its next target, R times a
 * second (an update every 1/R s on a schedule that a late updater catches
 * up on), or as fast as it can (R = 0, the default).  The callers run at
 * nice K (default 0), the updater at the program's.  The run lasts S seconds (default 20) in a child process: a crash
 * (a signal) is counted and a new child runs for the time left.
 *
 * Patchers (static_call.h):
 *   store           STATIC_CALL_PATCHER_STORE on a seed-policy table
 *   breakpoint      STATIC_CALL_PATCHER_BREAKPOINT on a kernel-policy table
 *   prefix          STATIC_CALL_PATCHER_PREFIX on a seed-policy table written
 *                   with --allow-prefixed (it rewrites the 2E E8 sites)
 *   store-crossing  the control: STATIC_CALL_PATCHER_STORE_UNSAFE on a
 *                   kernel-policy table, one 4-byte store on crossing sites too
 *   prefix-early    the control: STATIC_CALL_PATCHER_PREFIX_EARLY, whose trap
 *                   handler returns before the displacement is written
 *
 * Prints what was run, the state of every site after the last update, and
 * last `stress PATCHER: C calls, U updates, F wrong, K crashes`.  Exit status
 * 0 when nothing went wrong (F = K = 0 and every listed site that the
 * patcher rewrites calls the current target), 1 otherwise, 2 on a usage or
 * set-up error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "stress.h"

extern const unsigned char __executable_start[];

struct site {
	const char *name;
	long (*fn)(long);
	int key;		/* 0: sc_a, 1: sc_b */
	long adj;		/* what the site adds to the target's value */
	long arg;		/* what the site adds to the argument */
};

static const struct site sites[] = {
	{ "s_call_a", s_call_a, 0, 1, 0 },
	{ "s_call_b", s_call_b, 1, 2, 0 },
	{ "s_call2_b", s_call2_b, 1, 7, 1 },
	{ "s_tail_a", s_tail_a, 0, 0, 0 },
	{ "s_cold_b", s_cold_b, 1, 3, 0 },
	{ "s_other_a", s_other_a, 0, 4, 0 },
	{ "s_cross60_a", s_cross60_a, 0, 0, 0 },
	{ "s_cross61_a", s_cross61_a, 0, 0, 0 },
	{ "s_cross62_a", s_cross62_a, 0, 0, 0 },
	{ "s_cross63_b", s_cross63_b, 1, 0, 0 },
	{ "s_tcross61_b", s_tcross61_b, 1, 0, 0 },
	{ "s_tail3_b", s_tail3_b, 1, 0, 0 },
	{ "p_call_a", p_call_a, 0, 5, 0 },
	{ "p_call_b", p_call_b, 1, 6, 0 },
	{ "p_call2_b", p_call2_b, 1, 8, 1 },
	{ "p_cross59_a", p_cross59_a, 0, 0, 0 },
	{ "p_cross60_b", p_cross60_b, 1, 0, 0 },
	{ "p_cross61_a", p_cross61_a, 0, 0, 0 },
	{ "p_cross62_b", p_cross62_b, 1, 0, 0 },
};
#define NSITES	(sizeof(sites) / sizeof(sites[0]))

static long (*const targets[STRESS_KEYS][STRESS_TARGETS])(long) = {
	{ tgt_a0, tgt_a1, tgt_a2 },
	{ tgt_b0, tgt_b1, tgt_b2 },
};
static struct static_call_key *const keys[STRESS_KEYS] = { &__SCK__sc_a, &__SCK__sc_b };

/* Counters shared with the parent, so that a crashed child's work counts. */
struct shared {
	uint64_t calls, updates, wrong, emulated, nudges;
	double updater_cpu;	/* CPU seconds of the updater threads */
	int setup_failed;
	char sync[40];
	char first_wrong[200];
	uintptr_t crash_rip, crash_ret;	/* the last crash: where, and [rsp] */
	int crash_sig;
};
static struct shared *sh;
static volatile int stop;

#define FLUSH	(1 << 14)	/* calls between two flushes of a thread's counters */

static void note_wrong(const struct site *s, long x, long r)
{
	char buf[sizeof(sh->first_wrong)];

	snprintf(buf, sizeof(buf), "%s(%ld) returned %#lx", s->name, x, (unsigned long)r);
	if (__atomic_fetch_add(&sh->wrong, 1, __ATOMIC_RELAXED) == 0)
		memcpy(sh->first_wrong, buf, sizeof(buf));
}

static int caller_nice;	/* --caller-nice */

static void *caller(void *arg)
{
	long x = (long)(uintptr_t)arg * 1000003;
	uint64_t calls = 0;

	if (caller_nice)	/* this thread only (Linux: a thread is a process here) */
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), caller_nice);

	while (!stop) {
		for (unsigned i = 0; i < NSITES; i++) {
			const struct site *s = &sites[i];
			long r = s->fn(x) - s->adj;
			long id = r & 0xff;

			if ((r >> 8) != x + s->arg || id < STRESS_ID(s->key, 0) ||
			    id >= STRESS_ID(s->key, STRESS_TARGETS))
				note_wrong(s, x, r + s->adj);
		}
		x = (x + 1) & 0xffffffffff;
		calls += NSITES;
		if (calls >= FLUSH) {
			__atomic_fetch_add(&sh->calls, calls, __ATOMIC_RELAXED);
			calls = 0;
		}
	}
	__atomic_fetch_add(&sh->calls, calls, __ATOMIC_RELAXED);
	return NULL;
}

static double update_rate;	/* --update-rate: updates per second; 0: back to back */

static double now(void);

static double cpu_seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * Wait for the time of update number `done` on a schedule of update_rate
 * per second from t0: an updater that was descheduled catches up at once,
 * so the rate over the run is the one asked for as long as the updates
 * themselves keep up.
 */
static void pace(double t0, uint64_t done)
{
	double due = t0 + (double)done / update_rate, t;

	while (!stop && (t = now()) < due) {
		double until = due < t + 0.01 ? due : t + 0.01;	/* see `stop` soon */
		struct timespec ts = { (time_t)until,
				       (long)((until - (double)(time_t)until) * 1e9) };

		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
}

static void *updater(void *arg)
{
	unsigned next[STRESS_KEYS] = { 0, 0 };
	uint64_t n = 0, done = 0;
	double t0 = now(), cpu0 = 0, cpu;

	(void)arg;
	if (update_rate > 0)
		prctl(PR_SET_TIMERSLACK, 1000UL);	/* 1 µs, not 50: intervals of ~100 µs */
	while (!stop) {
		for (int k = 0; k < STRESS_KEYS; k++) {
			long (*to)(long) = targets[k][next[k] = (next[k] + 1) % STRESS_TARGETS];
			int r = k ? static_call_update(sc_b, to) : static_call_update(sc_a, to);

			if (r < 0) {
				perror("static_call_update");
				_exit(2);
			}
			n++;
			if (update_rate > 0)
				pace(t0, ++done);
		}
		if (n >= 256) {
			/* with its CPU time: a child that crashes has counted both */
			cpu = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
			sh->updater_cpu += cpu - cpu0;
			cpu0 = cpu;
			__atomic_fetch_add(&sh->updates, n, __ATOMIC_RELAXED);
			n = 0;
		}
	}
	__atomic_fetch_add(&sh->updates, n, __ATOMIC_RELAXED);
	sh->updater_cpu += cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	return NULL;
}

/*
 * A crash: note where (RIP) and the word at RSP (the return address a call
 * pushed), then die of the same signal.  The parent explains it.
 */
static void crash_recorder(int sig, siginfo_t *info, void *ctx)
{
	greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;

	(void)info;
	sh->crash_sig = sig;
	sh->crash_rip = (uintptr_t)g[REG_RIP];
	sh->crash_ret = *(uintptr_t *)g[REG_RSP];
	signal(sig, SIG_DFL);
	if (sig == SIGTRAP)
		g[REG_RIP]--;	/* re-execute the int3 */
}

static void record_crashes(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = crash_recorder;
	sa.sa_flags = SA_SIGINFO;
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/*
 * Which site's torn displacement explains a crash at `rip`, among the sites
 * the patcher writes (the fault is at
 * the destination, or one byte after it for an int3): for an E8/E9 site
 * that crosses a line, the rel32 bytes in its first line from one target
 * and those in the second from another; for a cs-prefixed site, whose
 * rel32 the prefix patcher writes one byte at a time, any mix of the bytes
 * of the key's targets (a thread the control released early may run the
 * bytes of two updates).  Writes a description into buf; 0 if none fits.
 */
static int explain_prefixed(const unsigned char *insn, int k, uintptr_t rip, int *mix)
{
	uintptr_t field = (uintptr_t)insn + 2;
	uint32_t rel[STRESS_TARGETS];

	for (int t = 0; t < STRESS_TARGETS; t++)
		rel[t] = (uint32_t)((uintptr_t)targets[k][t] - field - 4);
	for (int c = 0; c < 81; c++) {		/* a target for each byte */
		int d[4] = { c % 3, c / 3 % 3, c / 9 % 3, c / 27 }, t;
		uint32_t torn = 0;
		uintptr_t dest;

		if (d[0] == d[1] && d[1] == d[2] && d[2] == d[3])
			continue;
		for (int b = 0; b < 4; b++)
			torn |= rel[d[b]] & (0xffu << (8 * b));
		dest = field + 4 + (intptr_t)(int32_t)torn;
		if (rip == dest || rip == dest + 1) {
			for (t = 0; t < 4; t++)
				mix[t] = d[t];
			return 1;
		}
	}
	return 0;
}
static int torn_at[NSITES];	/* crashes explained, per site */

static int explain_crash(enum static_call_patcher patcher, uintptr_t rip, char *buf, size_t len)
{
	const struct static_call_site *e;

	for (e = static_call_sites_begin(); e < static_call_sites_end(); e++) {
		const unsigned char *insn = static_call_site_addr(e);
		int prefixed = static_call_insn_prefixed(insn);
		uintptr_t field = (uintptr_t)insn + 1 + prefixed;
		unsigned low = STATIC_CALL_CACHE_LINE - field % STATIC_CALL_CACHE_LINE;
		int k = static_call_site_key(e) == keys[0] ? 0 : 1;

		int mix[4];

		if (!static_call_patcher_owns(patcher, insn))
			continue;	/* never written: it calls the trampoline */
		if (low >= 4 && !prefixed)
			continue;	/* the rel32 lies in one line */
		if (prefixed && !explain_prefixed(insn, k, rip, mix))
			continue;
		for (int o = 0; o < STRESS_TARGETS; o++)
			for (int n = 0; n < STRESS_TARGETS; n++) {
				uint32_t ro = (uint32_t)((uintptr_t)targets[k][o] - field - 4);
				uint32_t rn = (uint32_t)((uintptr_t)targets[k][n] - field - 4);
				uint32_t mask = (1u << (8 * low)) - 1, torn = (ro & mask) | (rn & ~mask);
				uintptr_t dest = field + 4 + (intptr_t)(int32_t)torn;

				if (prefixed || (o != n && (rip == dest || rip == dest + 1))) {
					const char *name = "?";
					unsigned best = NSITES;

					/* the site function that starts closest before insn */
					for (unsigned i = 0; i < NSITES; i++)
						if ((uintptr_t)insn - (uintptr_t)sites[i].fn < 64 &&
						    (best == NSITES || (uintptr_t)sites[i].fn >
						     (uintptr_t)sites[best].fn))
							best = i;
					if (best < NSITES) {
						name = sites[best].name;
						torn_at[best]++;
					}
					if (prefixed)
						snprintf(buf, len, "%s's cs-prefixed site at %#lx executed "
							 "with its rel32 bytes 0..3 from targets %d %d %d %d",
							 name, (unsigned long)(insn -
							 (const unsigned char *)__executable_start),
							 mix[0], mix[1], mix[2], mix[3]);
					else
						snprintf(buf, len, "%s's site at %#lx (rel32 split %u|%u "
							 "across a line) read with its first line from "
							 "target %d, its second from target %d", name,
							 (unsigned long)(insn -
							 (const unsigned char *)__executable_start),
							 low, 4 - low, o, n);
					return 1;
				}
			}
	}
	return 0;
}

/*
 * After the run: every table entry calls the key's current target directly
 * if the patcher rewrites it, else the trampoline; no int3 is left; each
 * trampoline jumps to the current target.  Returns the number of bad sites.
 */
static int final_state(enum static_call_patcher patcher)
{
	const struct static_call_site *e;
	int entries = 0, direct = 0, tramp = 0, bad = 0;

	for (e = static_call_sites_begin(); e < static_call_sites_end(); e++) {
		const unsigned char *insn = static_call_site_addr(e);
		struct static_call_key *key = static_call_site_key(e);
		int rewrites = static_call_patcher_owns(patcher, insn);
		void *dest = static_call_insn_dest(insn);

		entries++;
		if (rewrites && dest == key->func)
			direct++;
		else if (!rewrites && dest == key->tramp)
			tramp++;
		else
			bad++;
	}
	for (int k = 0; k < STRESS_KEYS; k++)
		bad += static_call_insn_dest(keys[k]->tramp) != keys[k]->func;
	printf("final: entries %d, direct %d, via-trampoline %d, bad %d\n",
	       entries, direct, tramp, bad);
	return bad;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The child: set up, run the threads for `seconds`, check the final state. */
static int child(enum static_call_patcher patcher, enum static_call_policy policy,
		 int nthreads, double seconds, int report)
{
	pthread_t th[nthreads + 1];
	struct timespec ts;
	int bad = 0;

	record_crashes();	/* before set-up: a trap patcher chains to it */
	if (static_call_setup(policy, patcher)) {
		perror("static_call_setup");
		sh->setup_failed = 1;
		return 2;
	}
	snprintf(sh->sync, sizeof(sh->sync), "%s", static_call_sync_method());
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, caller, (void *)(uintptr_t)(i + 1));
	pthread_create(&th[nthreads], NULL, updater, NULL);
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	stop = 1;
	for (int i = 0; i <= nthreads; i++)
		pthread_join(th[i], NULL);
	__atomic_fetch_add(&sh->emulated, static_call_emulated(), __ATOMIC_RELAXED);
	__atomic_fetch_add(&sh->nudges, static_call_nudges(), __ATOMIC_RELAXED);
	if (report)
		bad = final_state(patcher);
	fflush(stdout);
	return bad ? 1 : 0;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --patcher store|breakpoint|prefix|store-crossing|"
		"prefix-early [--seconds S] [--threads N] [--update-rate R] [--caller-nice K]\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	enum static_call_patcher patcher = STATIC_CALL_PATCHER_DEFAULT;
	enum static_call_policy policy = STATIC_CALL_POLICY_SEED;
	const char *name = NULL;
	double seconds = 20, deadline, cpu = 0;	/* cpu: the children's, user + system */
	int nthreads = 2 * (int)sysconf(_SC_NPROCESSORS_ONLN), crashes = 0, explained = 0, status = 0;
	char crash_signals[256] = "";

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--patcher") && i + 1 < argc)
			name = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--caller-nice") && i + 1 < argc)
			caller_nice = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--update-rate") && i + 1 < argc)
			update_rate = atof(argv[++i]);
		else
			usage(argv[0]);
	}
	if (!name || seconds <= 0 || nthreads < 1 || nthreads > 1024 || update_rate < 0 ||
	    caller_nice < 0 || caller_nice > 19)
		usage(argv[0]);
	if (!strcmp(name, "store")) {
		patcher = STATIC_CALL_PATCHER_STORE;
	} else if (!strcmp(name, "breakpoint")) {
		patcher = STATIC_CALL_PATCHER_BREAKPOINT;
		policy = STATIC_CALL_POLICY_KERNEL;
	} else if (!strcmp(name, "store-crossing")) {
		patcher = STATIC_CALL_PATCHER_STORE_UNSAFE;
		policy = STATIC_CALL_POLICY_KERNEL;
	} else if (!strcmp(name, "prefix")) {
		patcher = STATIC_CALL_PATCHER_PREFIX;
	} else if (!strcmp(name, "prefix-early")) {
		patcher = STATIC_CALL_PATCHER_PREFIX_EARLY;
	} else {
		usage(argv[0]);
	}

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	{
		const struct static_call_site *e;
		int listed = 0, crossing = 0, owned = 0, prefixed = 0;
		char rate[48] = "as fast as it can";

		if (update_rate > 0)
			snprintf(rate, sizeof(rate), "%g updates/s", update_rate);

		for (e = static_call_sites_begin(); e < static_call_sites_end(); e++) {
			listed++;
			crossing += static_call_crosses_line(static_call_site_addr(e));
			prefixed += static_call_insn_prefixed(static_call_site_addr(e));
			owned += static_call_patcher_owns(patcher, static_call_site_addr(e));
		}
		printf("stress %s: %zu sites, %d listed in the table (%d crossing a line), "
		       "%d cs-prefixed, %d the patcher's, %d caller threads (nice %d), 1 updater "
		       "(%s), %g s\n", name, NSITES, listed, crossing, prefixed, owned, nthreads,
		       caller_nice, rate, seconds);
	}
	fflush(stdout);

	/* Children until the time is up: one, unless it crashes. */
	deadline = now() + seconds;
	for (double left = seconds; left > 0.01 && crashes < 10000; left = deadline - now()) {
		pid_t pid;
		int ws;
		struct rusage ru;

		fflush(stdout);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0)
			_exit(child(patcher, policy, nthreads, left, 1));
		while (wait4(pid, &ws, 0, &ru) < 0 && errno == EINTR)
			;
		cpu += ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
			ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
		if (WIFSIGNALED(ws)) {
			char why[160];

			crashes++;
			if (explain_crash(patcher, sh->crash_rip, why, sizeof(why)))
				explained++;
			else
				snprintf(why, sizeof(why), "unexplained");
			if (crashes <= 3)
				printf("crash %d: %s at %#lx (return address %#lx): %s\n", crashes,
				       strsignal(WTERMSIG(ws)),
				       (unsigned long)(sh->crash_rip - (uintptr_t)__executable_start),
				       (unsigned long)(sh->crash_ret - (uintptr_t)__executable_start),
				       why);
			if (strlen(crash_signals) < sizeof(crash_signals) - 16 &&
			    !strstr(crash_signals, strsignal(WTERMSIG(ws))))
				snprintf(crash_signals + strlen(crash_signals),
					 sizeof(crash_signals) - strlen(crash_signals),
					 "%s%s", *crash_signals ? ", " : "", strsignal(WTERMSIG(ws)));
			continue;
		}
		if (sh->setup_failed || WEXITSTATUS(ws) == 2)
			return 2;
		status |= WEXITSTATUS(ws);
		break;
	}
	if (patcher == STATIC_CALL_PATCHER_BREAKPOINT)
		printf("serialising with %s; %llu calls emulated by the SIGTRAP handler\n",
		       sh->sync, (unsigned long long)sh->emulated);
	else if (patcher == STATIC_CALL_PATCHER_PREFIX || patcher == STATIC_CALL_PATCHER_PREFIX_EARLY)
		printf("serialising with %s; %llu traps returned to their E8 by the SIGTRAP "
		       "handler; %llu nudges\n", sh->sync, (unsigned long long)sh->emulated,
		       (unsigned long long)sh->nudges);
	printf("cpu: %.2f s for the callers and the updater in %.2f s (%.0f calls per CPU-second), "
	       "%.2f s of it the updater's (%.1f µs per update)\n", cpu, seconds,
	       cpu > 0 ? (double)sh->calls / cpu : 0.0, sh->updater_cpu,
	       sh->updates ? sh->updater_cpu / (double)sh->updates * 1e6 : 0.0);
	if (sh->wrong)
		printf("first wrong landing: %s\n", sh->first_wrong);
	if (crashes) {
		printf("crashed children: %d (%s); %d explained by a torn rel32",
		       crashes, crash_signals, explained);
		for (unsigned i = 0, first = 1; i < NSITES; i++)
			if (torn_at[i]) {
				printf("%s %s %d", first ? ":" : ",", sites[i].name, torn_at[i]);
				first = 0;
			}
		printf("\n");
	}
	printf("stress %s: %llu calls, %llu updates, %llu wrong, %d crashes\n", name,
	       (unsigned long long)sh->calls, (unsigned long long)sh->updates,
	       (unsigned long long)sh->wrong, crashes);
	return status || sh->wrong || crashes;
}
