/*
 * kinds.S - one of every kind of static-call site and reference.
 *
 * Assemble: as --64 -o kinds.o kinds.S   (plain gas: no C preprocessor)
 *
 * Static calls used here:
 *   foo  - trampoline __SCT__foo undefined, key __SCK__foo defined in .data
 *   bar  - trampoline __SCT__bar undefined, NO key (missing-key cases);
 *          assemble with --defsym ALL_KEYS=1 to reference __SCK__bar too
 *   baz  - trampoline __SCT__baz defined here in .static_call.text (as the
 *          kernel's DEFINE_STATIC_CALL does), key __SCK__baz defined in .data
 *
 * Assemble with --defsym OBJTOOL=1 to leave out the two constructs on which
 * objtool 6.1 and scall-objtool are meant to disagree (a branch to
 * __SCT__foo+8, which objtool counts as a call to the trampoline, and a
 * call behind a byte that is invalid in 64-bit mode, which objtool's decoder
 * steps over while scall-objtool cannot prove the call).  Then objtool 6.1
 * (with --module, or with ALL_KEYS=1 too) writes the same table as
 * `scall-objtool write --policy kernel`.
 *
 * References are reported at the offset of their relocation (given in
 * brackets below); sites at the start of the instruction.
 *
 * Layout of .text (offsets are asserted by the tests; keep them stable):
 *   f_call       0x00  call  __SCT__foo            site  call         (5)
 *                0x05  call  memcpy                not a site
 *   f_tail       0x10  jmp   __SCT__foo            site  tail         (5)
 *   f_jcc        0x22  jne   __SCT__bar            site  jcc-tail     (6)
 *   f_cs         0x30  cs call __SCT__foo          site  prefixed-call (6, "2e")
 *   f_addr32     0x40  addr32 call __SCT__foo      site  prefixed-call (6, "67")
 *   f_indirect   0x50  call *__SCT__foo@GOTPCREL   site  indirect (FF 15, 6)
 *                0x56  jmp  *__SCT__bar@GOTPCREL   site  indirect (FF 25, 6)
 *   f_refs       0x60  leaq __SCT__foo(%rip),%rax  ref   address (PC32) [0x63]
 *                0x67  movq $__SCT__foo,%rax       ref   address (32S)  [0x6a]
 *                0x6e  call __SCT__bar             site  call         (5)
 *   f_plus8      0x80  call __SCT__foo+8           ref   address (PC32, addend +4) [0x81]
 *                                                         (not with OBJTOOL)
 *   f_local      0x90  call __SCT__local           not a site (LOCAL symbol)
 *   f_baz        0xa0  call __SCT__baz             site  call
 *                0xa5  jmp  __SCT__baz             site  tail
 *   f_bad        0xb0  (invalid opcode 0x06) then call __SCT__foo at 0xb1:
 *                                                   ref   unproven [0xb2] (not with OBJTOOL)
 * .data:         .quad __SCT__foo at 0x08           ref   data     [0x08]
 */

	.text
	.p2align 4

	.globl	f_call
	.type	f_call, @function
f_call:
	call	__SCT__foo
	call	memcpy
	ret
	.size	f_call, .-f_call

	.p2align 4, 0xcc
	.globl	f_tail
	.type	f_tail, @function
f_tail:
	jmp	__SCT__foo
	.size	f_tail, .-f_tail

	.p2align 4, 0xcc
	.globl	f_jcc
	.type	f_jcc, @function
f_jcc:
	testl	%edi, %edi
	jne	__SCT__bar
	ret
	.size	f_jcc, .-f_jcc

	.p2align 4, 0xcc
	.globl	f_cs
	.type	f_cs, @function
f_cs:
	.byte	0x2e
	call	__SCT__foo
	ret
	.size	f_cs, .-f_cs

	.p2align 4, 0xcc
	.globl	f_addr32
	.type	f_addr32, @function
f_addr32:
	.byte	0x67			/* addr32 (gas drops it from "addr32 call") */
	call	__SCT__foo
	ret
	.size	f_addr32, .-f_addr32

	.p2align 4, 0xcc
	.globl	f_indirect
	.type	f_indirect, @function
f_indirect:
	call	*__SCT__foo@GOTPCREL(%rip)
	jmp	*__SCT__bar@GOTPCREL(%rip)
	.size	f_indirect, .-f_indirect

	.p2align 4, 0xcc
	.globl	f_refs
	.type	f_refs, @function
f_refs:
	leaq	__SCT__foo(%rip), %rax
	movq	$__SCT__foo, %rax
	call	__SCT__bar
	ret
	.size	f_refs, .-f_refs

	.p2align 4, 0xcc
	.globl	f_plus8
	.type	f_plus8, @function
f_plus8:
	.ifndef OBJTOOL
	call	__SCT__foo+8
	.else
	.nops	5
	.endif
	ret
	.size	f_plus8, .-f_plus8

	.p2align 4, 0xcc
	.globl	f_local
	.type	f_local, @function
f_local:
	/* call __SCT__local, relocated against the LOCAL symbol itself
	   (a plain "call" would use the section symbol .text.local) */
	.byte	0xe8
	.reloc	., R_X86_64_PLT32, __SCT__local-4
	.long	0
	ret
	.size	f_local, .-f_local

	.p2align 4, 0xcc
	.globl	f_baz
	.type	f_baz, @function
f_baz:
	call	__SCT__baz
	jmp	__SCT__baz
	.size	f_baz, .-f_baz

	.p2align 4, 0xcc
	.globl	f_bad
	.type	f_bad, @function
f_bad:
	.ifndef OBJTOOL
	.byte	0x06			/* "push %es": invalid in 64-bit mode */
	call	__SCT__foo
	.else
	.nops	6
	.endif
	ret
	.size	f_bad, .-f_bad

/* A LOCAL symbol with the trampoline prefix is not a trampoline. */
	.section .text.local, "ax", @progbits
	.type	__SCT__local, @function
__SCT__local:
	ret
	.size	__SCT__local, .-__SCT__local

/* A trampoline defined in this object, as DEFINE_STATIC_CALL does. */
	.section .static_call.text, "ax", @progbits
	.p2align 3
	.globl	__SCT__baz
	.type	__SCT__baz, @function
__SCT__baz:
	.byte	0xe9
	.long	baz_target - (. + 4)
	.byte	0x0f, 0xb9, 0xcc	/* ud1 %esp, %ecx */
	.size	__SCT__baz, .-__SCT__baz

	.data
	.p2align 3
	.globl	__SCK__foo
	.type	__SCK__foo, @object
__SCK__foo:
	.quad	0
	.size	__SCK__foo, 8

	.type	foo_ptr, @object
foo_ptr:
	.quad	__SCT__foo
	.size	foo_ptr, 8

	.globl	__SCK__baz
	.type	__SCK__baz, @object
__SCK__baz:
	.quad	baz_target
	.size	__SCK__baz, 8

	.ifdef ALL_KEYS
	.section .discard.addressable, "aw", @progbits
	.p2align 3
	.quad	__SCK__bar
	.endif

	.section .note.GNU-stack, "", @progbits
