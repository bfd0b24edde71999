/*
 * inline_wrappers.h - the shape of the kernel's most common static calls:
 * reached through always-inline wrappers in a header, so that the call
 * instruction's innermost line is here and not in the caller.
 *
 *   cond_resched()      include/linux/sched.h (6.1, CONFIG_PREEMPT_DYNAMIC):
 *                       a macro around _cond_resched(), an always-inline
 *                       function calling static_call_mod(cond_resched)()
 *   trace_sched_tick()  a tracepoint: trace_NAME() inlines __do_trace_NAME(),
 *                       which calls static_call(tp_func_NAME) when enabled
 */
#ifndef SCALL_TEST_INLINE_WRAPPERS_H
#define SCALL_TEST_INLINE_WRAPPERS_H

#include "static_call.h"

#define __always_inline inline __attribute__((__always_inline__))

int __cond_resched(void);
DECLARE_STATIC_CALL(cond_resched, __cond_resched);

static __always_inline int _cond_resched(void)
{
	return static_call_mod(cond_resched)();
}

#define cond_resched() ({			\
	__might_resched(__FILE__, __LINE__);	\
	_cond_resched();			\
})

void __might_resched(const char *file, int line);

struct tracepoint {
	int enabled;
	void *data;
};

#define DECLARE_TRACE(name, proto, args)				\
	extern struct tracepoint __tracepoint_##name;			\
	void __traceiter_##name(void *data, proto);			\
	DECLARE_STATIC_CALL(tp_func_##name, __traceiter_##name);	\
	static __always_inline void __do_trace_##name(proto)		\
	{								\
		static_call(tp_func_##name)(__tracepoint_##name.data, args); \
	}								\
	static __always_inline void trace_##name(proto)			\
	{								\
		if (__builtin_expect(__tracepoint_##name.enabled, 0))	\
			__do_trace_##name(args);			\
	}

#define PARAMS(args...) args

DECLARE_TRACE(sched_tick, PARAMS(int cpu, long now), PARAMS(cpu, now))

#endif
