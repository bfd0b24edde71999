/*
 * static_call.c - the run-time half of user-space inline static calls: retarget
 * a trampoline and rewrite the call sites that scall-objtool listed in
 * .static_call_sites (see static_call.h and README.md).
 *
 * An update runs in two phases so that a bad table changes nothing:
 *   1. check the trampoline and every entry of the key (static_call_check_site):
 *      E8 (tail flag 0) or E9 (tail flag 1) rel32 whose destination is the
 *      trampoline or the current target; under the seed policy also that the
 *      5 bytes do not cross a cache line at their final address (a crossing
 *      site is left alone: it keeps calling the trampoline); the new target
 *      must be reachable with a rel32 from every site;
 *   2. write: the trampoline's rel32 first (so every site that is not
 *      rewritten, or not rewritten yet, already reaches the new target), then
 *      each site's rel32, each with one 4-byte store, the page made RWX around
 *      it and R-X again afterwards (W^X outside the write).
 */
#define _GNU_SOURCE
#include "static_call.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Bracketed by static_call_sites.ld. */
extern const struct static_call_site __start_static_call_sites[]
	__attribute__((visibility("hidden")));
extern const struct static_call_site __stop_static_call_sites[]
	__attribute__((visibility("hidden")));

static const unsigned char tramp_signature[3] = { 0x0f, 0xb9, 0xcc };

static pthread_mutex_t static_call_mutex = PTHREAD_MUTEX_INITIALIZER;
static enum static_call_policy current_policy = STATIC_CALL_POLICY_SEED;
static int updated;		/* an update has been made: the policy is fixed */

const struct static_call_site *static_call_sites_begin(void)
{
	return __start_static_call_sites;
}

const struct static_call_site *static_call_sites_end(void)
{
	return __stop_static_call_sites;
}

int static_call_init(enum static_call_policy policy)
{
	int ret = 0;

	if (policy != STATIC_CALL_POLICY_SEED && policy != STATIC_CALL_POLICY_KERNEL) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&static_call_mutex);
	if (updated && policy != current_policy) {
		/* sites skipped under one policy must not be judged by another */
		errno = EBUSY;
		ret = -1;
	} else {
		current_policy = policy;
	}
	pthread_mutex_unlock(&static_call_mutex);
	return ret;
}

enum static_call_policy static_call_policy(void)
{
	return current_policy;
}

static int rel32_reaches(const unsigned char *insn, const void *dest)
{
	intptr_t d = (intptr_t)dest - (intptr_t)(insn + STATIC_CALL_INSN_SIZE);

	return d >= INT32_MIN && d <= INT32_MAX;
}

int static_call_check_site(const struct static_call_site *site,
			   const struct static_call_key *key, const void *old_func,
			   enum static_call_policy policy, const char **why)
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
	if (insn[0] != (tail ? 0xe9 : 0xe8)) {
		if (insn[0] == 0xe8 || insn[0] == 0xe9)
			*why = tail ? "tail flag set but the site is a call (E8)"
				    : "tail flag clear but the site is a jmp (E9)";
		else
			*why = "not an E8 call or E9 jmp rel32";
		return -1;
	}
	dest = static_call_insn_dest(insn);
	if (dest != key->tramp && dest != old_func) {
		*why = "destination is neither the trampoline nor the current target";
		return -1;
	}
	if (policy == STATIC_CALL_POLICY_SEED && static_call_crosses_line(insn)) {
		*why = "crosses a cache line at its final address (left on the trampoline)";
		return 0;
	}
	return 1;
}

/* One 4-byte store: x86 writes it atomically when it stays inside a line. */
static void store32(void *p, uint32_t v)
{
	__asm__ volatile("movl %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static int text_write32(unsigned char *p, uint32_t v)
{
	static long page;
	uintptr_t start, end;

	if (!page)
		page = sysconf(_SC_PAGESIZE);
	start = (uintptr_t)p & ~(uintptr_t)(page - 1);
	end = ((uintptr_t)p + 4 + page - 1) & ~(uintptr_t)(page - 1);
	if (mprotect((void *)start, end - start, PROT_READ | PROT_WRITE | PROT_EXEC))
		return -1;
	store32(p, v);
	if (mprotect((void *)start, end - start, PROT_READ | PROT_EXEC))
		return -1;
	return 0;
}

static uint32_t rel32_to(const unsigned char *insn, const void *dest)
{
	return (uint32_t)((intptr_t)dest - (intptr_t)(insn + STATIC_CALL_INSN_SIZE));
}

static int fail(struct static_call_key *key, const void *where, const char *why, int err)
{
	fprintf(stderr, "static_call_update(%p): %p: %s; nothing changed\n",
		(void *)key, where, why);
	errno = err;
	return -1;
}

int __static_call_update(struct static_call_key *key, void *func)
{
	const struct static_call_site *s, *begin = __start_static_call_sites,
		*end = __stop_static_call_sites;
	unsigned char *tramp = key->tramp;
	void *old = key->func;
	int rewritten = 0, ret;
	const char *why;

	if (!func)
		return fail(key, NULL, "NULL target not supported", EINVAL);

	pthread_mutex_lock(&static_call_mutex);
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
	for (s = begin; s < end; s++) {
		if (static_call_site_key(s) != key)
			continue;
		if (static_call_check_site(s, key, old, current_policy, &why) < 0) {
			ret = fail(key, static_call_site_addr(s), why, EINVAL);
			goto out;
		}
		if (!rel32_reaches(static_call_site_addr(s), func)) {
			ret = fail(key, static_call_site_addr(s), "new target out of rel32 range", ERANGE);
			goto out;
		}
	}

	/* Phase 2: the trampoline, then the sites. */
	if (text_write32(tramp + 1, rel32_to(tramp, func)))
		goto fatal;
	key->func = func;
	for (s = begin; s < end; s++) {
		unsigned char *insn = static_call_site_addr(s);

		if (static_call_site_key(s) != key)
			continue;
		if (current_policy == STATIC_CALL_POLICY_SEED && static_call_crosses_line(insn))
			continue;	/* fallback, found in phase 1 */
		if (text_write32(insn + 1, rel32_to(insn, func)))
			goto fatal;
		rewritten++;
	}
	ret = rewritten;
out:
	pthread_mutex_unlock(&static_call_mutex);
	return ret;
fatal:
	/* Some sites may call the old target and others the new one. */
	perror("static_call_update: mprotect");
	abort();
}
