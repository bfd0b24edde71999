/*
 * stress.h - the stress program's two static calls, their targets and call
 * sites.  Every target returns (x << 8) | ID, so a caller can tell which
 * target it reached and that the result is the one that target computes.
 */
#ifndef STRESS_H
#define STRESS_H

#include "static_call.h"

#define STRESS_KEYS	2
#define STRESS_TARGETS	3	/* per key */

/* Targets (stress_asm.S): sc_a's are 0x10, 0x11, 0x12; sc_b's 0x20, 0x21, 0x22. */
long tgt_a0(long), tgt_a1(long), tgt_a2(long);
long tgt_b0(long), tgt_b1(long), tgt_b2(long);
#define STRESS_ID(key, i)	(0x10 * ((key) + 1) + (i))

DECLARE_STATIC_CALL(sc_a, tgt_a0);
DECLARE_STATIC_CALL(sc_b, tgt_b0);

/* Sites: each function makes exactly one static call and returns its
 * result plus the adjustment given in stress.c's site list. */
long s_call_a(long), s_call_b(long), s_tail_a(long), s_cold_b(long),
	s_other_a(long), s_call2_b(long);			/* C: stress_sites.c */
long s_cross60_a(long), s_cross61_a(long), s_cross62_a(long),
	s_cross63_b(long), s_tcross61_b(long), s_tail3_b(long);	/* asm: stress_asm.S */
/* cs-prefixed calls (2E E8 rel32), the prefix patcher's: in C through
 * static_call_prefixed(), and in assembly with the prefix byte at line
 * offset 59, 60, 61 (rel32 split 3|1, 2|2, 1|3) and 62 (the instruction
 * crosses, its rel32 does not) */
long p_call_a(long), p_call_b(long), p_call2_b(long);		/* C */
long p_cross59_a(long), p_cross60_b(long), p_cross61_a(long), p_cross62_b(long); /* asm */

#endif
