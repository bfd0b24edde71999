/*
 * sections_inline.c - the shape of the kernel's DEFINE_IDTENTRY_SYSVEC
 * (arch/x86/kernel/smp.c): one macro line defines a function in .text, one
 * in .noinstr.text and the always-inline functions both call, so that in a
 * relocatable object two sections hold code at the same offsets, and the
 * tracepoint's inline instance is split (clang: DW_AT_ranges through
 * DW_FORM_rnglistx).  In the object, `addr2line -i` loses the inline frames
 * and `llvm-symbolizer --inlining` reads the other section's function; the
 * same object linked alone gives them distinct addresses
 * (tests/test_lines_clang.py).
 */
#include "inline_wrappers.h"

int work(int n);

#define noinstr __attribute__((__section__(".noinstr.text"), __noinline__))

#define DEFINE_ENTRY(name)							\
static __always_inline void __##name(int cpu, long now);			\
static __always_inline void instr_##name(int cpu, long now)		\
{									\
	if (work(-1))							\
		__##name(cpu, now);					\
}									\
noinstr void name(int cpu, long now)					\
{									\
	work(1);							\
	instr_##name(cpu, now);						\
	work(2);							\
}									\
void fred_##name(int cpu, long now)					\
{									\
	work(3);							\
	instr_##name(cpu, now);						\
	work(4);							\
}									\
static __always_inline void __##name(int cpu, long now)

DEFINE_ENTRY(sysvec_tick)
{
	work(cpu);
	trace_sched_tick(cpu, now);
	work(now + cpu);
	trace_sched_tick(cpu + 1, now);
}

/* a call whose line-table row clang leaves at line 0: two calls merged */
int merged(int cpu, long now)
{
	if (work(cpu)) {
		work(10);
		trace_sched_tick(cpu, now);
	} else {
		work(20);
		trace_sched_tick(cpu, now);
	}
	return 0;
}
