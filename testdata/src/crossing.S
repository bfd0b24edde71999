/*
 * crossing.S - static-call sites at chosen offsets, to test the three-valued
 * cache-line crossing rule.
 *
 * Assemble: as --64 -o crossing.o crossing.S   (plain gas: no C preprocessor)
 *
 * Every site goes to __SCT__foo; the key __SCK__foo is referenced (undefined)
 * from .discard.addressable, as the kernel's __STATIC_CALL_ADDRESSABLE does.
 * Each site is the first instruction of its own function (c_<offset in hex>),
 * placed with .org; the gaps are int3 (0xcc) outside any function.
 *
 * .text (sh_addralign 64)                 offset  mod64  C=64     C=32
 *   c_000   call                            0x000     0  never    never
 *   c_03b   call                            0x03b    59  never    never (59%32=27, ends at 32)
 *   c_07c   call                            0x07c    60  always   always
 *   c_0bf   call                            0x0bf    63  always   always
 *   c_11e   call                            0x11e    30  never    always (30+5 > 32)
 *   c_17d   jmp  (tail)                     0x17d    61  always   always
 *   c_1c0   jmp  (tail)                     0x1c0     0  never    never
 *   c_23a   jne  (jcc-tail, 6 bytes)        0x23a    58  never    never (26+6=32)
 *   c_27b   jne  (jcc-tail, 6 bytes)        0x27b    59  always   always
 *   c_2fb   cs call (prefixed, 6 bytes)     0x2fb    59  always   always
 *
 * .text.a16 (sh_addralign 16)             offset  mod16  default  --assume-align 64
 *   d_00b   call                            0x00b    11  never    never
 *   d_01c   call                            0x01c    12  depends  never  (28+5 <= 64)
 *   d_03c   call                            0x03c    12  depends  always (60+5 > 64)
 *   d_04f   call                            0x04f    15  depends  never  (15+5 <= 64)
 *
 * .text.a1 (sh_addralign 1)               offset         default  --assume-align 64
 *   e_000   call                            0x000          depends  never
 *   e_03e   call                            0x03e          depends  always (62+5 > 64)
 *   e_083   call                            0x083          depends  never  (131%64=3)
 *           (with --cache-line 8 --assume-align 4: 131%4=3, 3+5 = 8 = the
 *           line: still depends, the boundary of "always")
 */

	.section .text, "ax", @progbits
	.p2align 6

	.macro	site name, off, insn:vararg
	.org	\off, 0xcc
	.globl	\name
	.type	\name, @function
\name:
	\insn
	ret
	.size	\name, .-\name
	.endm

	/* gas drops "cs"/"addr32" from a call: emit the prefix as a byte */
	.macro	prefixed_site name, off, prefix, insn:vararg
	.org	\off, 0xcc
	.globl	\name
	.type	\name, @function
\name:
	.byte	\prefix
	\insn
	ret
	.size	\name, .-\name
	.endm

	site	c_000, 0x000, call __SCT__foo
	site	c_03b, 0x03b, call __SCT__foo
	site	c_07c, 0x07c, call __SCT__foo
	site	c_0bf, 0x0bf, call __SCT__foo
	site	c_11e, 0x11e, call __SCT__foo
	site	c_17d, 0x17d, jmp __SCT__foo
	site	c_1c0, 0x1c0, jmp __SCT__foo
	site	c_23a, 0x23a, jne __SCT__foo
	site	c_27b, 0x27b, jne __SCT__foo
	prefixed_site c_2fb, 0x2fb, 0x2e, call __SCT__foo

	.section .text.a16, "ax", @progbits
	.p2align 4
	site	d_00b, 0x00b, call __SCT__foo
	site	d_01c, 0x01c, call __SCT__foo
	site	d_03c, 0x03c, call __SCT__foo
	site	d_04f, 0x04f, call __SCT__foo

	.section .text.a1, "ax", @progbits
	site	e_000, 0x000, call __SCT__foo
	site	e_03e, 0x03e, call __SCT__foo
	site	e_083, 0x083, call __SCT__foo

	.section .discard.addressable, "aw", @progbits
	.p2align 3
	.quad	__SCK__foo

	.section .note.GNU-stack, "", @progbits
