/* Two alternatives shaped as Linux 6.1 writes them (struct alt_instr:
 * s32 instr_offset, s32 repl_offset, u16 cpuid, u8 instrlen,
 * u8 replacementlen), each replacing a call by a call: the first
 * replacement starts a line of .altinstr_replacement, the second sits at
 * offset 62 of it, where a 5-byte call crosses the line, so the call
 * alignment pads it inside the replacement (tests/test_remedy.py). */
	.text
	.globl alt_user
alt_user:
661:	call orig_first
662:
	.pushsection .altinstructions, "a"
	.long 661b - .
	.long 6641f - .
	.word 0x0123
	.byte 662b - 661b
	.byte 6642f - 6641f
	.popsection
663:	call orig_second
664:
	.pushsection .altinstructions, "a"
	.long 663b - .
	.long 6643f - .
	.word 0x0124
	.byte 664b - 663b
	.byte 6644f - 6643f
	.popsection
	ret

	.pushsection .altinstr_replacement, "ax"
	.balign 64
6641:	call repl_first
6642:
	.rept 57
	nop
	.endr
6643:	call repl_second
6644:
	.popsection
