/*
 * inline_sites.c - static calls reached through inline wrappers in a header
 * (inline_wrappers.h): the caller's line is what a developer edits.  The
 * tests compare every site's frames with `addr2line -i`.  With -DLINKED it
 * also defines the trampolines, keys and main() for a linked executable.
 */
#include "inline_wrappers.h"

int work(int n);

int scan_pages(int n)
{
	int done = 0;

	for (int i = 0; i < n; i++) {
		done += work(i);
		cond_resched();
	}
	return done;
}

void sched_tick(int cpu, long now)
{
	trace_sched_tick(cpu, now);
	work(cpu);
}

int tick_and_yield(int cpu, long now)
{
	trace_sched_tick(cpu, now + 1);
	if (work(cpu))
		return cond_resched();
	trace_sched_tick(cpu, now + 2);
	return 0;
}

int direct_call(void)
{
	return static_call(cond_resched)() + 1;
}

#ifdef LINKED
struct static_call_key __SCK__cond_resched, __SCK__tp_func_sched_tick;
struct tracepoint __tracepoint_sched_tick;
/* the trampolines, out of the compiler's sight (it would inline C bodies) */
asm(".text\n"
    ".globl __SCT__cond_resched\n.type __SCT__cond_resched, @function\n"
    "__SCT__cond_resched:\n\txorl %eax, %eax\n\tret\n"
    ".size __SCT__cond_resched, . - __SCT__cond_resched\n"
    ".globl __SCT__tp_func_sched_tick\n.type __SCT__tp_func_sched_tick, @function\n"
    "__SCT__tp_func_sched_tick:\n\tret\n"
    ".size __SCT__tp_func_sched_tick, . - __SCT__tp_func_sched_tick\n");
int __cond_resched(void) { return 0; }
void __traceiter_sched_tick(void *data, int cpu, long now) { (void)data; (void)cpu; (void)now; }
void __might_resched(const char *file, int line) { (void)file; (void)line; }
__attribute__((noinline)) int work(int n) { return n & 1; }

int main(int argc, char **argv)
{
	(void)argv;
	sched_tick(argc, 1);
	return scan_pages(argc) + tick_and_yield(argc, 2) + direct_call();
}
#endif
