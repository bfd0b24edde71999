/*
 * stress_asm.S - call sites whose place does not depend on the compiler,
 * and the six targets.
 *
 * Sites in 64-aligned sections, so scall-objtool knows where they fall in a
 * cache line: calls at offsets 60, 61 and 62 (their rel32 is split 3|1, 2|2
 * and 1|3 between two lines), a call at 63 (the instruction crosses, its
 * rel32 does not), a tail jmp at 61, and a tail jmp at offset 3 that does
 * not cross.  The seed policy lists none of them; the kernel policy all.
 * And cs-prefixed calls (2E E8) with the prefix at offsets 59 to 62, which
 * the seed policy lists with --allow-prefixed, the kernel policy always.
 *
 * Targets: f(x) = (x << 8) | ID.  They are 0x10101 bytes apart, the space
 * filled with int3, so that the rel32 of any site differs between two
 * targets in three of its four bytes: a displacement torn between an old
 * and a new value lands in int3 (a crash) or far away, not on a target.
 */
	.macro	site name, pad, insn, key
	.section .text.\name, "ax", @progbits
	.p2align 6
	.globl	\name
	.type	\name, @function
\name:
	.ifc	\insn, call
	subq	$8, %rsp		/* 4 bytes; keeps %rsp 16-aligned at the call */
	.fill	\pad - 4, 1, 0x90
	call	__SCT__\key
	addq	$8, %rsp
	ret
	.else
	.fill	\pad, 1, 0x90
	jmp	__SCT__\key
	.endif
	.size	\name, . - \name
	.endm

	/* a cs-prefixed call with its prefix byte at line offset \pad */
	.macro	psite name, pad, key
	.section .text.\name, "ax", @progbits
	.p2align 6
	.globl	\name
	.type	\name, @function
\name:
	subq	$8, %rsp
	.fill	\pad - 4, 1, 0x90
	.byte	0x2e
	call	__SCT__\key
	addq	$8, %rsp
	ret
	.size	\name, . - \name
	.endm

	psite	p_cross59_a, 59, sc_a
	psite	p_cross60_b, 60, sc_b
	psite	p_cross61_a, 61, sc_a
	psite	p_cross62_b, 62, sc_b

	site	s_cross60_a, 60, call, sc_a
	site	s_cross61_a, 61, call, sc_a
	site	s_cross62_a, 62, call, sc_a
	site	s_cross63_b, 63, call, sc_b
	site	s_tcross61_b, 61, jmp, sc_b
	site	s_tail3_b, 3, jmp, sc_b

	.macro	target name, id
	.p2align 4
	.globl	\name
	.type	\name, @function
\name:
	movq	%rdi, %rax
	shlq	$8, %rax
	orq	$\id, %rax
	ret
	.size	\name, . - \name
	.fill	0x10101, 1, 0xcc
	.endm

	.section .text.stress_targets, "ax", @progbits
	.fill	64, 1, 0xcc
	target	tgt_a0, 0x10
	target	tgt_b0, 0x20
	target	tgt_a1, 0x11
	target	tgt_b1, 0x21
	target	tgt_a2, 0x12
	target	tgt_b2, 0x22

	.section .note.GNU-stack, "", @progbits
