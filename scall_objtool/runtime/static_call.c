/*
 * static_call.c - the run-time half of user-space inline static calls:
 * retarget a trampoline and rewrite the call sites that scall-objtool listed
 * in .static_call_sites, while other threads keep calling through them (see
 * static_call.h and docs/runtime.md).
 *
 * Set-up (static_call_setup, or the first update):
 *   - every executable mapping holding a site or a trampoline is copied into
 *     a memfd, which is mapped back over it (R-X, MAP_FIXED: same bytes,
 *     same address) and once more elsewhere (RW-).  Code is written only
 *     through that alias; it never loses its execute permission and no
 *     mapping is writable and executable;
 *   - breakpoint patcher: membarrier registration and the SIGTRAP handler,
 *     and a sorted array of every site and trampoline for the handler.
 *
 * An update runs in two phases so that a bad table changes nothing:
 *   1. check the trampoline and every entry of the key (static_call_check_site):
 *      E8 (tail flag 0) or E9 (tail flag 1) rel32 whose destination is the
 *      trampoline or the current target; for the store patcher also that the
 *      5 bytes do not cross a cache line at their final address (a crossing
 *      site is left alone: it keeps calling the trampoline); the new target
 *      must be reachable with a rel32 from every site;
 *   2. write, with the patcher chosen at set-up:
 *      store:      the trampoline's rel32 first (so every site that is not
 *                  rewritten, or not rewritten yet, already reaches the new
 *                  target), then each site's rel32, each one 4-byte store;
 *      breakpoint: text_poke_bp's batch over the trampoline and the sites:
 *                  int3 on every first byte, sync, every rel32, sync, every
 *                  first byte back, sync;
 *      prefix:     the trampoline with one store, then over the 2E E8 sites:
 *                  int3 on every prefix byte, nudge the threads the handler
 *                  released, sync, every rel32 (byte by byte), sync, every
 *                  prefix back.
 */
#define _GNU_SOURCE
#include "static_call.h"

#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC	0x0001U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC	0x0010U
#endif

/* Bracketed by static_call_sites.ld. */
extern const struct static_call_site __start_static_call_sites[]
	__attribute__((visibility("hidden")));
extern const struct static_call_site __stop_static_call_sites[]
	__attribute__((visibility("hidden")));

static const unsigned char tramp_signature[3] = { 0x0f, 0xb9, 0xcc };

#define INT3	0xcc

static pthread_mutex_t static_call_mutex = PTHREAD_MUTEX_INITIALIZER;
static enum static_call_policy current_policy = STATIC_CALL_POLICY_SEED;
static enum static_call_patcher current_patcher = STATIC_CALL_PATCHER_STORE;
static int configured;		/* static_call_setup succeeded */
static int updated;		/* an update has been made: the choice is fixed */

const struct static_call_site *static_call_sites_begin(void)
{
	return __start_static_call_sites;
}

const struct static_call_site *static_call_sites_end(void)
{
	return __stop_static_call_sites;
}

enum static_call_policy static_call_policy(void)
{
	return current_policy;
}

enum static_call_patcher static_call_patcher(void)
{
	return current_patcher;
}

/* ------------------------------------------------------------ text alias */

struct text_alias {
	uintptr_t start, end;	/* the R-X mapping of the memfd, where the code runs */
	unsigned char *rw;	/* the same pages, RW-, somewhere else */
};

#define MAX_ALIASES	16
static struct text_alias aliases[MAX_ALIASES];
static int n_aliases;

static const struct text_alias *alias_of(uintptr_t p)
{
	for (int i = 0; i < n_aliases; i++)
		if (p >= aliases[i].start && p < aliases[i].end)
			return &aliases[i];
	return NULL;
}

/* The mapping of /proc/self/maps that holds p: its bounds and permissions. */
static int find_mapping(uintptr_t p, uintptr_t *start, uintptr_t *end, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int found = 0;

	if (!f)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		uintptr_t s, e;

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s", &s, &e, perms) == 3 &&
		    p >= s && p < e) {
			*start = s;
			*end = e;
			found = 1;
		}
	}
	fclose(f);
	if (!found) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

/*
 * Give the executable mapping that holds p a writable alias: copy it into a
 * memfd, map the memfd over it R-X with MAP_FIXED (the kernel swaps the
 * mapping under mmap_lock: a thread running there meanwhile faults and
 * waits, then finds the same bytes), and map it RW- elsewhere.
 */
static int make_alias(uintptr_t p)
{
	uintptr_t start, end;
	char perms[5];
	size_t len, done;
	unsigned char *rw;
	void *rx;
	int fd;

	if (alias_of(p))
		return 0;
	if (n_aliases == MAX_ALIASES) {
		errno = ENOMEM;
		return -1;
	}
	if (find_mapping(p, &start, &end, perms))
		return -1;
	if (perms[0] != 'r' || perms[2] != 'x') {
		errno = EACCES;	/* a site or trampoline outside readable code */
		return -1;
	}
	len = end - start;
	fd = (int)syscall(SYS_memfd_create, "static_call_text", MFD_CLOEXEC | MFD_EXEC);
	if (fd < 0 && errno == EINVAL)	/* kernels before 6.3 know no MFD_EXEC */
		fd = (int)syscall(SYS_memfd_create, "static_call_text", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)len))
		goto fail;
	for (done = 0; done < len; ) {
		ssize_t n = pwrite(fd, (const void *)(start + done), len - done, (off_t)done);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		done += (size_t)n;
	}
	rw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rw == MAP_FAILED)
		goto fail;
	rx = mmap((void *)start, len, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, fd, 0);
	if (rx == MAP_FAILED) {
		munmap(rw, len);
		goto fail;
	}
	close(fd);
	aliases[n_aliases++] = (struct text_alias){ start, end, rw };
	return 0;
fail:
	close(fd);
	return -1;
}

/* The writable alias of the code byte at p (set up before any write). */
static unsigned char *rw_of(const void *p)
{
	const struct text_alias *a = alias_of((uintptr_t)p);

	if (!a)
		abort();	/* set-up covered every site and trampoline */
	return a->rw + ((uintptr_t)p - a->start);
}

/* One 4-byte store (movl): atomic when the 4 bytes stay inside a line. */
static void poke32(void *code, uint32_t v)
{
	__asm__ volatile("movl %1, (%0)" : : "r"(rw_of(code)), "r"(v) : "memory");
}

static void poke8(void *code, uint8_t v)
{
	__asm__ volatile("movb %1, (%0)" : : "r"(rw_of(code)), "q"(v) : "memory");
}

/* The four bytes of a rel32 one at a time, lowest first: the prefix patcher
 * needs no atomic store (no thread executes them meanwhile).
 * STATIC_CALL_WRITE_SPACING=N (tests) spins N pause loops between two bytes,
 * which widens the window its control experiment is about. */
static unsigned long write_spacing;

static void poke32_bytes(void *code, uint32_t v)
{
	unsigned char *p = code;

	for (int i = 0; i < 4; i++) {
		if (i)
			for (unsigned long n = write_spacing; n; n--)
				__asm__ volatile("pause" ::: "memory");
		poke8(p + i, (uint8_t)(v >> (8 * i)));
	}
}

/* ------------------------------------------------------------ serialising */

static int have_serialize;	/* CPUID.(7,0):EDX[14] */
static int sync_cmd;		/* membarrier command; 0: none */
static const char *sync_name = "none";

/* A serializing instruction on this CPU (SERIALIZE, or CPUID, which traps
 * to the hypervisor in a VM and costs far more). */
static void sync_core_self(void)
{
	unsigned int a = 0, b, c = 0, d;

	if (have_serialize)
		__asm__ volatile(".byte 0x0f, 0x01, 0xe8" : : : "memory");
	else
		__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d) : : "memory");
}

static long membarrier(int cmd, unsigned int flags)
{
	return syscall(SYS_membarrier, cmd, flags, 0);
}

/*
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: every other thread of the
 * process that is running executes a core-serializing instruction before
 * the call returns; one that is not running will on its way back to user
 * mode.  Fallback: PRIVATE_EXPEDITED, which interrupts every CPU running a
 * thread of the process with an IPI; a thread interrupted in user mode
 * returns through IRET, itself serializing, so for it the two are the same.
 * What SYNC_CORE adds is a sync_core() for a thread that was in the kernel
 * or not running, which may return to user mode by SYSRET; under the
 * fallback such a thread relies on its stale prefetch being gone after a
 * system call or a context switch (true in practice, not architectural).
 * STATIC_CALL_SYNC=expedited in the environment forces the fallback (tests).
 */
static void detect_serialize(void)
{
	unsigned int a, b, c, d;

	if (__get_cpuid_max(0, NULL) >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		have_serialize = (d >> 14) & 1;
	}
}

static int sync_setup(void)
{
	const char *force = getenv("STATIC_CALL_SYNC");
	long q;

	if (sync_cmd)
		return 0;
	q = membarrier(MEMBARRIER_CMD_QUERY, 0);
	if (q < 0) {
		errno = ENOSYS;
		return -1;
	}
	if (!(force && !strcmp(force, "expedited")) &&
	    (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
	    !membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0)) {
		sync_cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE;
		sync_name = "membarrier-sync-core";
		return 0;
	}
	if ((q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    !membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0)) {
		sync_cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED;
		sync_name = "membarrier-expedited";
		return 0;
	}
	errno = ENOSYS;
	return -1;
}

static int traps(enum static_call_patcher patcher)
{
	return patcher == STATIC_CALL_PATCHER_BREAKPOINT || patcher == STATIC_CALL_PATCHER_PREFIX ||
		patcher == STATIC_CALL_PATCHER_PREFIX_EARLY;
}

const char *static_call_sync_method(void)
{
	return traps(current_patcher) ? sync_name : "none";
}

/* Every thread of the process, this one included, serialises. */
static void sync_all(void)
{
	sync_core_self();
	if (membarrier(sync_cmd, 0)) {
		perror("static_call_update: membarrier");
		abort();	/* sites hold int3 or a half-written rel32 */
	}
}

/* ------------------------------------------------------------ breakpoints */

struct bp_site {
	uintptr_t addr;			/* the E8/E9 or 2E E8 instruction */
	struct static_call_key *key;
	int armed;			/* prefix patcher: rel32 about to change */
	unsigned char tail;		/* E9 (tail call, or the trampoline) */
	unsigned char len;		/* 5, or 6 for 2E E8 */
};				/* 24 bytes (scripts/runtime-bench counts them) */

_Static_assert(sizeof(struct bp_site) == 24, "scripts/runtime-bench's BP_SITE");
static struct bp_site *bp_sites;	/* sorted by addr; set once at set-up */
static struct bp_site **prefix_batch;	/* write_prefix's sites; sized at set-up */
static size_t n_bp_sites;
static struct sigaction old_sigtrap;
static unsigned long emulated;

unsigned long static_call_emulated(void)
{
	return __atomic_load_n(&emulated, __ATOMIC_RELAXED);
}

/*
 * The prefix patcher's handshake with its trap handler.  Per site, `armed`
 * is 1 from before the int3 is written until the new rel32 is in place: a
 * thread that traps meanwhile waits (spins a little, then sleeps on the
 * futex word disarm_gen, which the writer bumps and wakes once per batch),
 * then returns to the E8.
 *
 * A thread released onto an E8 can be preempted there, before it executes
 * it, and resume after a *later* update has started writing that rel32.
 * So each released thread marks itself `pending` in its slot, and the next
 * update, once its int3 bytes are in place, sends each pending thread a
 * SIGTRAP of its own (rt_tgsigqueueinfo, SI_QUEUE, carrying &nudge_cookie)
 * before it serialises.  The nudge is delivered before that thread runs
 * another user instruction (SIGTRAP is blocked while the handler runs, so
 * a thread still in the handler gets it right after returning); the
 * handler puts a thread it finds on a prefixed site's E8 back on the prefix
 * byte, where it meets the int3 and waits like any other.  The serialise
 * that follows interrupts every running thread, so after it no released
 * thread executes an E8 it was released onto: the writer never waits for a
 * caller to be scheduled.  Slot and writer use sequentially consistent
 * operations (a Dekker pair: the handler marks itself, then reads `armed`;
 * the writer sets `armed`, then reads the marks).
 */
#ifndef SPINS
#define SPINS	1000		/* pause loops before sleeping: a write takes a few µs */
#endif
#define YIELDS	1000		/* then sched_yield()s before sleeping */
#define MAX_SLOTS	1024	/* threads with a slot; the others: `unslotted` */
static int max_slots = MAX_SLOTS;	/* STATIC_CALL_NUDGE_SLOTS=N (tests): fewer */

struct nudge_slot {
	int tid;
	int pending;		/* released onto an E8 since the last nudge */
};

static struct nudge_slot slots[MAX_SLOTS];
static int n_slots;		/* slots claimed (may exceed MAX_SLOTS) */
static int unslotted;		/* a thread without a slot was released */
static int armed_waiters, disarm_gen;
static unsigned long nudges;	/* signals sent by nudge() */
static const int nudge_cookie;
static __thread struct nudge_slot *my_slot __attribute__((tls_model("initial-exec")));
static __thread int slot_claimed __attribute__((tls_model("initial-exec")));

/* Mark the calling thread released (1) or not (0). */
static void mark_released(int on)
{
	if (!slot_claimed) {
		int i = __atomic_fetch_add(&n_slots, 1, __ATOMIC_SEQ_CST);

		slot_claimed = 1;
		if (i < max_slots) {
			slots[i].tid = (int)syscall(SYS_gettid);
			my_slot = &slots[i];
		}
	}
	if (my_slot)
		__atomic_store_n(&my_slot->pending, on, __ATOMIC_SEQ_CST);
	else if (on)
		__atomic_store_n(&unslotted, 1, __ATOMIC_SEQ_CST);
	if (on)		/* order the mark before the caller's load of `armed` */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* futex(2) on a private word: sleep while *word == val; wake n sleepers.
 * Raw system calls, async-signal-safe. */
static void futex_wait(int *word, int val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(int *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/*
 * The prefix handler's wait while s is armed: spin (the writer is running:
 * a few µs), then yield the CPU (the writer may be waiting for one: on a
 * machine with more runnable threads than CPUs a woken waiter would take
 * the writer's CPU while int3 bytes are still in place), then sleep on
 * disarm_gen.  sched_yield(2) and futex(2) are raw system calls.
 */
static void wait_disarmed(const struct bp_site *s)
{
	for (int i = 0; i < SPINS && __atomic_load_n(&s->armed, __ATOMIC_SEQ_CST); i++)
		__asm__ volatile("pause" ::: "memory");
	for (int i = 0; i < YIELDS && __atomic_load_n(&s->armed, __ATOMIC_SEQ_CST); i++)
		syscall(SYS_sched_yield);
	__atomic_fetch_add(&armed_waiters, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		int gen = __atomic_load_n(&disarm_gen, __ATOMIC_SEQ_CST);

		if (!__atomic_load_n(&s->armed, __ATOMIC_SEQ_CST))
			break;
		futex_wait(&disarm_gen, gen);
	}
	__atomic_fetch_sub(&armed_waiters, 1, __ATOMIC_SEQ_CST);
}

static struct bp_site *bp_lookup(uintptr_t addr)
{
	size_t lo = 0, hi = n_bp_sites;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (bp_sites[mid].addr == addr)
			return &bp_sites[mid];
		if (bp_sites[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * int3 at a site (the trap leaves RIP after the int3 byte): do what the site
 * does, to the key's current target.  key->func is stored before any int3 is
 * written, so it is the new target or, if this handler runs late, one set by
 * a later update: a valid target either way.  The call's return address
 * goes where `call` would have put it, below RSP (the kernel placed the
 * signal frame below the 128-byte red zone).
 */
static void bp_handler(int sig, siginfo_t *info, void *ctx)
{
	ucontext_t *uc = ctx;
	greg_t *gregs = uc->uc_mcontext.gregs;
	uintptr_t at = (uintptr_t)gregs[REG_RIP] - 1;
	struct bp_site *s = bp_lookup(at);
	void *to;

	if (info->si_code == SI_QUEUE && info->si_value.sival_ptr == &nudge_cookie &&
	    info->si_pid == getpid()) {
		/* prefix patcher's nudge: a thread on a prefixed site's E8 goes
		 * back onto its prefix byte (int3 now); elsewhere, nothing */
		if (s && s->len == 6)
			gregs[REG_RIP] = (greg_t)s->addr;
		return;
	}
	if (s && s->len == 6 && current_patcher != STATIC_CALL_PATCHER_BREAKPOINT) {
		/*
		 * Prefix patcher: RIP is on the E8 already.  Return once the
		 * displacement is in place, marked released (the next update
		 * nudges the thread if it is still on the E8).  The control
		 * returns at once.
		 */
		if (current_patcher == STATIC_CALL_PATCHER_PREFIX) {
			for (;;) {
				mark_released(1);
				if (!__atomic_load_n(&s->armed, __ATOMIC_SEQ_CST))
					break;
				mark_released(0);
				wait_disarmed(s);
			}
		}
		__atomic_fetch_add(&emulated, 1, __ATOMIC_RELAXED);
		return;
	}
	if (!s) {
		/* Not ours: hand it on, or re-execute the int3 with the
		 * default action (the process dies of SIGTRAP as it would have). */
		if (old_sigtrap.sa_flags & SA_SIGINFO) {
			old_sigtrap.sa_sigaction(sig, info, ctx);
		} else if (old_sigtrap.sa_handler != SIG_DFL && old_sigtrap.sa_handler != SIG_IGN) {
			old_sigtrap.sa_handler(sig);
		} else {
			signal(SIGTRAP, SIG_DFL);
			gregs[REG_RIP] = (greg_t)at;
		}
		return;
	}
	to = __atomic_load_n(&s->key->func, __ATOMIC_ACQUIRE);
	if (!s->tail) {
		gregs[REG_RSP] -= 8;
		*(uint64_t *)gregs[REG_RSP] = at + (uintptr_t)s->len;
	}
	gregs[REG_RIP] = (greg_t)to;
	__atomic_fetch_add(&emulated, 1, __ATOMIC_RELAXED);
}

static int bp_cmp(const void *a, const void *b)
{
	uintptr_t x = ((const struct bp_site *)a)->addr, y = ((const struct bp_site *)b)->addr;

	return (x > y) - (x < y);
}

/* Every table site and the trampoline of every key in the table. */
static int bp_setup(void)
{
	const struct static_call_site *s, *b = __start_static_call_sites,
		*e = __stop_static_call_sites;
	size_t n = 0, max = 2 * (size_t)(e - b);
	struct sigaction sa;

	if (bp_sites)
		return 0;
	bp_sites = calloc(max ? max : 1, sizeof(*bp_sites));
	if (!bp_sites)
		return -1;
	/* one trampoline per key (sorted to drop repeats), then the sites */
	for (s = b; s < e; s++)
		bp_sites[n++] = (struct bp_site){ (uintptr_t)static_call_site_key(s)->tramp,
			static_call_site_key(s), 0, 1, STATIC_CALL_INSN_SIZE };
	qsort(bp_sites, n, sizeof(*bp_sites), bp_cmp);
	max = n;
	n = 0;
	for (size_t i = 0; i < max; i++)
		if (!n || bp_sites[i].addr != bp_sites[n - 1].addr)
			bp_sites[n++] = bp_sites[i];
	for (s = b; s < e; s++)
		bp_sites[n++] = (struct bp_site){ (uintptr_t)static_call_site_addr(s),
			static_call_site_key(s),
			0, (unsigned char)(static_call_site_flags(s) & STATIC_CALL_SITE_TAIL),
			(unsigned char)static_call_insn_len(static_call_site_addr(s)) };
	qsort(bp_sites, n, sizeof(*bp_sites), bp_cmp);
	n_bp_sites = n;
	prefix_batch = calloc(n ? n : 1, sizeof(*prefix_batch));
	if (!prefix_batch)
		return -1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = bp_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGTRAP, &sa, &old_sigtrap);
}

/* ------------------------------------------------------------ set-up */

/* Writable aliases for every site and every trampoline of the table's keys. */
static int alias_setup(void)
{
	for (const struct static_call_site *s = __start_static_call_sites;
	     s < __stop_static_call_sites; s++)
		if (make_alias((uintptr_t)static_call_site_addr(s)) ||
		    make_alias((uintptr_t)static_call_site_key(s)->tramp))
			return -1;
	return 0;
}

static int setup_locked(enum static_call_policy policy, enum static_call_patcher patcher)
{
	if (policy != STATIC_CALL_POLICY_SEED && policy != STATIC_CALL_POLICY_KERNEL) {
		errno = EINVAL;
		return -1;
	}
	if (patcher == STATIC_CALL_PATCHER_DEFAULT)
		patcher = policy == STATIC_CALL_POLICY_SEED ? STATIC_CALL_PATCHER_STORE
							    : STATIC_CALL_PATCHER_BREAKPOINT;
	if (patcher < STATIC_CALL_PATCHER_STORE || patcher > STATIC_CALL_PATCHER_PREFIX_EARLY) {
		errno = EINVAL;
		return -1;
	}
	if (updated && (policy != current_policy || patcher != current_patcher)) {
		/* sites refused under one choice must not be judged by another */
		errno = EBUSY;
		return -1;
	}
	detect_serialize();
	if (getenv("STATIC_CALL_NUDGE_SLOTS") && !updated)
	{
		unsigned long n = strtoul(getenv("STATIC_CALL_NUDGE_SLOTS"), NULL, 10);

		max_slots = n < MAX_SLOTS ? (int)n : MAX_SLOTS;
	}
	if (getenv("STATIC_CALL_WRITE_SPACING"))
		write_spacing = strtoul(getenv("STATIC_CALL_WRITE_SPACING"), NULL, 10);
	if (alias_setup())
		return -1;
	if (traps(patcher) && (sync_setup() || bp_setup()))
		return -1;
	current_policy = policy;
	current_patcher = patcher;
	configured = 1;
	return 0;
}

int static_call_setup(enum static_call_policy policy, enum static_call_patcher patcher)
{
	int ret;

	pthread_mutex_lock(&static_call_mutex);
	ret = setup_locked(policy, patcher);
	pthread_mutex_unlock(&static_call_mutex);
	return ret;
}

int static_call_init(enum static_call_policy policy)
{
	return static_call_setup(policy, STATIC_CALL_PATCHER_DEFAULT);
}

/* ------------------------------------------------------------ updating */

static int rel32_reaches(const unsigned char *insn, const void *dest)
{
	intptr_t d = (intptr_t)dest - (intptr_t)(insn + static_call_insn_len(insn));

	return d >= INT32_MIN && d <= INT32_MAX;
}

int static_call_check_site(const struct static_call_site *site,
			   const struct static_call_key *key, const void *old_func,
			   enum static_call_patcher patcher, const char **why)
{
	const unsigned char *insn = static_call_site_addr(site);
	unsigned long flags = static_call_site_flags(site);
	int tail = flags & STATIC_CALL_SITE_TAIL;
	const void *dest;
	const char *dummy;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (static_call_site_key(site) != key) {
		*why = "entry belongs to another key";
		return -1;
	}
	if (flags & ~STATIC_CALL_SITE_TAIL) {
		*why = "unknown flag bits in the key field";
		return -1;
	}
	if (static_call_insn_prefixed(insn)) {
		if (tail) {
			*why = "tail flag set but the site is a call (2E E8)";
			return -1;
		}
	} else if (insn[0] != (tail ? 0xe9 : 0xe8)) {
		if (insn[0] == 0xe8 || insn[0] == 0xe9)
			*why = tail ? "tail flag set but the site is a call (E8)"
				    : "tail flag clear but the site is a jmp (E9)";
		else
			*why = "not an E8 call or E9 jmp rel32, nor a 2E E8 call";
		return -1;
	}
	dest = static_call_insn_dest(insn);
	if (dest != key->tramp && dest != old_func) {
		*why = "destination is neither the trampoline nor the current target";
		return -1;
	}
	if (!static_call_patcher_owns(patcher, insn)) {
		if (patcher == STATIC_CALL_PATCHER_PREFIX || patcher == STATIC_CALL_PATCHER_PREFIX_EARLY)
			*why = "not a cs-prefixed call (left on the trampoline)";
		else if (static_call_insn_prefixed(insn))
			*why = "a cs-prefixed call, the prefix patcher's (left on the trampoline)";
		else
			*why = "crosses a cache line at its final address (left on the trampoline)";
		return 0;
	}
	return 1;
}

/* The rel32 of the E8/E9 at insn that reaches dest. */
static uint32_t rel32_to(const unsigned char *insn, const void *dest)
{
	return (uint32_t)((intptr_t)dest - (intptr_t)(insn + STATIC_CALL_INSN_SIZE));
}

/* The length of a site while its first byte may be an int3: as set-up
 * found it (the trap patchers know every site). */
static unsigned site_len(const unsigned char *insn)
{
	return (unsigned)bp_lookup((uintptr_t)insn)->len;
}

static int fail(struct static_call_key *key, const void *where, const char *why, int err)
{
	fprintf(stderr, "static_call_update(%p): %p: %s; nothing changed\n",
		(void *)key, where, why);
	errno = err;
	return -1;
}

/* Store patchers: the trampoline, then each site, one 4-byte store each. */
static int write_store(struct static_call_key *key, unsigned char *tramp, void *func)
{
	const struct static_call_site *s;
	int rewritten = 0;

	poke32(tramp + 1, rel32_to(tramp, func));
	__atomic_store_n(&key->func, func, __ATOMIC_RELEASE);
	for (s = __start_static_call_sites; s < __stop_static_call_sites; s++) {
		unsigned char *insn = static_call_site_addr(s);

		if (static_call_site_key(s) != key)
			continue;
		if (!static_call_patcher_owns(current_patcher, insn))
			continue;	/* fallback, found in phase 1 */
		poke32(insn + 1, rel32_to(insn, func));
		rewritten++;
	}
	sync_core_self();
	return rewritten;
}

/*
 * Breakpoint patcher, text_poke_bp_batch() in user space: the trampoline (if
 * the handler knows it) and every site of the key in one batch, three
 * serialisations in all.  key->func is the new target before the first int3
 * so that the handler emulates the new call.  The opcode (E8/E9) is never
 * changed, so the third pass writes back the byte that was there.
 */
static int write_breakpoint(struct static_call_key *key, unsigned char *tramp, void *func)
{
	const struct static_call_site *s;
	int tramp_bp = bp_lookup((uintptr_t)tramp) != NULL, rewritten = 0;

	__atomic_store_n(&key->func, func, __ATOMIC_RELEASE);
	if (!tramp_bp)		/* a key with no table entry: its trampoline is 8-aligned,
				   so the store patcher's rule covers it */
		poke32(tramp + 1, rel32_to(tramp, func));
	else
		poke8(tramp, INT3);
	for (s = __start_static_call_sites; s < __stop_static_call_sites; s++)
		if (static_call_site_key(s) == key)
			poke8(static_call_site_addr(s), INT3);
	sync_all();
	if (tramp_bp)
		poke32(tramp + 1, rel32_to(tramp, func));
	for (s = __start_static_call_sites; s < __stop_static_call_sites; s++)
		if (static_call_site_key(s) == key) {
			unsigned char *insn = static_call_site_addr(s);
			unsigned len = site_len(insn);

			poke32(insn + len - 4,
			       (uint32_t)((intptr_t)func - (intptr_t)(insn + len)));
			rewritten++;
		}
	sync_all();
	if (tramp_bp)
		poke8(tramp, 0xe9);
	for (s = __start_static_call_sites; s < __stop_static_call_sites; s++)
		if (static_call_site_key(s) == key) {
			unsigned char *insn = static_call_site_addr(s);

			poke8(insn, static_call_site_flags(s) & STATIC_CALL_SITE_TAIL ? 0xe9 :
			      site_len(insn) == 6 ? STATIC_CALL_CS_PREFIX : 0xe8);
		}
	sync_all();
	return rewritten;
}

/* A nudge (see the handshake above) to one thread. */
static void nudge(pid_t pid, int tid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGTRAP;
	si.si_code = SI_QUEUE;
	si.si_pid = pid;
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)&nudge_cookie;
	syscall(SYS_rt_tgsigqueueinfo, pid, tid, SIGTRAP, &si);	/* ESRCH: it has exited */
	__atomic_fetch_add(&nudges, 1, __ATOMIC_RELAXED);
}

unsigned long static_call_nudges(void)
{
	return __atomic_load_n(&nudges, __ATOMIC_RELAXED);
}

/* Nudge every thread released onto an E8 since the last call; returns how
 * many were nudged.  A thread without a slot: every thread of the process. */
static int nudge_released(void)
{
	int n = __atomic_load_n(&n_slots, __ATOMIC_SEQ_CST), sent = 0;
	pid_t pid = getpid();

	__atomic_thread_fence(__ATOMIC_SEQ_CST);	/* `armed` stores before the marks' loads */
	for (int i = 0; i < n && i < max_slots; i++)
		if (__atomic_exchange_n(&slots[i].pending, 0, __ATOMIC_SEQ_CST)) {
			nudge(pid, slots[i].tid);
			sent++;
		}
	if (__atomic_exchange_n(&unslotted, 0, __ATOMIC_SEQ_CST)) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;

		if (!d) {
			perror("static_call_update: /proc/self/task");
			abort();	/* sites hold int3 */
		}
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				nudge(pid, atoi(e->d_name));
				sent++;
			}
		closedir(d);
	}
	return sent;
}

/*
 * Prefix patcher (design 1).  The trampoline first, with one store (it is
 * 8-aligned: the seed rule covers it), so that every site that is not
 * rewritten, or not yet, reaches the new target.  Then, for the 2E E8 sites
 * of the key:
 *   1. arm each site and put int3 on its prefix byte;
 *   2. nudge every thread released onto an E8 since the last update (it
 *      goes back onto its prefix byte if it has not executed the E8);
 *   3. sync: from now on a thread that arrives at a site traps and waits,
 *      no CPU executes the old bytes from an earlier fetch, and every
 *      nudged thread has been interrupted: none executes an E8 it was
 *      released onto;
 *   4. write each rel32, one byte at a time (no one executes it);
 *   5. disarm: trapped threads return to their E8 and call the new target
 *      (the spinning ones at once; one futex wake for the sleeping ones);
 *   6. sync: no CPU keeps a stale copy of the old rel32;
 *   7. put each prefix back.  A thread that still sees the int3 afterwards
 *      traps and is released at once: no third sync.
 * The writer waits for no caller: two membarriers and, when threads were
 * released, one signal to each.
 * The control (PREFIX_EARLY) is the same writer with a handler that does
 * not wait.
 */
static int write_prefix(struct static_call_key *key, unsigned char *tramp, void *func)
{
	const struct static_call_site *s;
	int n = 0;

	poke32(tramp + 1, rel32_to(tramp, func));
	__atomic_store_n(&key->func, func, __ATOMIC_RELEASE);
	for (s = __start_static_call_sites; s < __stop_static_call_sites; s++)
		if (static_call_site_key(s) == key && site_len(static_call_site_addr(s)) == 6)
			prefix_batch[n++] = bp_lookup((uintptr_t)static_call_site_addr(s));
	if (!n) {
		sync_core_self();
		return 0;
	}
	for (int i = 0; i < n; i++) {
		__atomic_store_n(&prefix_batch[i]->armed, 1, __ATOMIC_SEQ_CST);
		poke8((void *)prefix_batch[i]->addr, INT3);
	}
	nudge_released();
	sync_all();
	for (int i = 0; i < n; i++) {
		unsigned char *insn = (unsigned char *)prefix_batch[i]->addr;

		poke32_bytes(insn + 2, (uint32_t)((intptr_t)func - (intptr_t)(insn + 6)));
	}
	for (int i = 0; i < n; i++)
		__atomic_store_n(&prefix_batch[i]->armed, 0, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&disarm_gen, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&armed_waiters, __ATOMIC_SEQ_CST))
		futex_wake(&disarm_gen);	/* one wake for the batch */
	sync_all();
	for (int i = 0; i < n; i++)
		poke8((void *)prefix_batch[i]->addr, STATIC_CALL_CS_PREFIX);
	return n;
}

int __static_call_update(struct static_call_key *key, void *func)
{
	const struct static_call_site *s;
	unsigned char *tramp = key->tramp;
	void *old = key->func;
	int ret;
	const char *why;

	if (!func)
		return fail(key, NULL, "NULL target not supported", EINVAL);

	pthread_mutex_lock(&static_call_mutex);
	if (!configured && setup_locked(current_policy, STATIC_CALL_PATCHER_DEFAULT)) {
		ret = -1;
		perror("static_call_update: set-up");
		goto out;
	}
	updated = 1;

	/* Phase 1: check everything. */
	if (tramp[0] != 0xe9 || static_call_insn_dest(tramp) != old ||
	    memcmp(tramp + STATIC_CALL_INSN_SIZE, tramp_signature, sizeof(tramp_signature))) {
		ret = fail(key, tramp, "not a static-call trampoline to the current target", EINVAL);
		goto out;
	}
	if (!rel32_reaches(tramp, func)) {
		ret = fail(key, tramp, "new target out of rel32 range", ERANGE);
		goto out;
	}
	if (static_call_crosses_line(tramp)) {	/* DEFINE_STATIC_CALL 8-aligns it */
		ret = fail(key, tramp, "trampoline crosses a cache line", EINVAL);
		goto out;
	}
	if (make_alias((uintptr_t)tramp)) {	/* a key that no table entry names */
		ret = fail(key, tramp, "cannot alias the trampoline's text", errno);
		goto out;
	}
	for (s = __start_static_call_sites; s < __stop_static_call_sites; s++) {
		if (static_call_site_key(s) != key)
			continue;
		if (static_call_check_site(s, key, old, current_patcher, &why) < 0) {
			ret = fail(key, static_call_site_addr(s), why, EINVAL);
			goto out;
		}
		if (!rel32_reaches(static_call_site_addr(s), func)) {
			ret = fail(key, static_call_site_addr(s), "new target out of rel32 range", ERANGE);
			goto out;
		}
	}

	/* Phase 2. */
	if (current_patcher == STATIC_CALL_PATCHER_BREAKPOINT)
		ret = write_breakpoint(key, tramp, func);
	else if (traps(current_patcher))
		ret = write_prefix(key, tramp, func);
	else
		ret = write_store(key, tramp, func);
out:
	pthread_mutex_unlock(&static_call_mutex);
	return ret;
}
