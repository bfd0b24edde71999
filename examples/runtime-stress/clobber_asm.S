/*
 * clobber_asm.S - the target of clobber.c's static call: returns x + 1 and
 * adds 1 to clobber_counter, after writing garbage into every register the
 * x86-64 System V convention lets a callee change: %rcx, %rdx, %rsi, %rdi,
 * %r8-%r11, %xmm0-%xmm15, the flags.  (The x87 stack is empty at a call;
 * %rbx, %rbp, %r12-%r15 and %rsp are preserved, as they must be.)  When
 * the stack was not 16-byte aligned at the call, as the convention requires,
 * it returns x + 2 instead.
 */
	.text
	.p2align 4
	.globl	clobber_target
	.type	clobber_target, @function
clobber_target:
	leaq	1(%rdi), %rax
	leaq	8(%rsp), %rcx		/* %rsp + 8 is 16-aligned at entry */
	testq	$15, %rcx
	jz	1f
	incq	%rax
1:
	incq	clobber_counter(%rip)
	movabsq	$0x5a5a5a5a5a5a5a5a, %rcx
	movq	%rcx, %rdx
	movq	%rcx, %rsi
	movq	%rcx, %rdi
	movq	%rcx, %r8
	movq	%rcx, %r9
	movq	%rcx, %r10
	movq	%rcx, %r11
	movq	%rcx, %xmm0
	.irp	n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
	movdqa	%xmm0, %xmm\n
	.endr
	cmpq	%rax, %rcx		/* flags */
	ret
	.size	clobber_target, . - clobber_target

	.section .note.GNU-stack, "", @progbits
