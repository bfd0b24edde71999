/* Trampolines for linkprog.c and two hand-written static-call sites:
 * a conditional tail call (jne -> 0F 85 rel32) and a tail call (jmp -> E9).
 */
	.globl	__SCK__a
	.globl	__SCK__b

	.section .static_call.text, "ax", @progbits
	.align	4
	.globl	__SCT__a
	.type	__SCT__a, @function
__SCT__a:
	jmp	target_a
	int3
	int3
	int3
	.size	__SCT__a, . - __SCT__a

	.align	4
	.globl	__SCT__b
	.type	__SCT__b, @function
__SCT__b:
	jmp	target_b
	int3
	int3
	int3
	.size	__SCT__b, . - __SCT__b

	.text
	.p2align 4
	.globl	cond_tail
	.type	cond_tail, @function
cond_tail:			/* x ? __SCT__a(x) : -1 */
	testl	%edi, %edi
	jne	__SCT__a
	movl	$-1, %eax
	ret
	.size	cond_tail, . - cond_tail

	.p2align 4
	.globl	asm_tail
	.type	asm_tail, @function
asm_tail:			/* __SCT__b(x, 7) */
	movl	$7, %esi
	jmp	__SCT__b
	.size	asm_tail, . - asm_tail

	.section .note.GNU-stack, "", @progbits
