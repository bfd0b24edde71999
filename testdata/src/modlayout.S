/*
 * modlayout.S - a kernel-module-like object for the module loader's layout
 * model (scall_objtool/core/placement.py, tests/test_placement.py).
 *
 * Assemble: as --64 [--defsym VARIANT=1 ...] -o modlayout.o modlayout.S
 *
 * The sections a Kbuild module has, with chosen sizes and alignments; the
 * expected offsets are worked out by hand in tests/test_placement.py.  Every
 * site calls the (undefined) trampoline __SCT__foo, as module code does, and
 * is the first instruction of its own function.
 *
 * Variants (--defsym NAME=1):
 *   NOUNLOAD    vermagic without mod_unload: .exit* sections are init
 *   V612        vermagic of a 6.12 kernel (the 6.4+ model)
 *   V510        vermagic of a 5.10 kernel (no model: alignment verdicts)
 *   NOVERMAGIC  .modinfo without vermagic
 *   NOINIT      no .init.text
 *   NOTHISMOD   no .gnu.linkonce.this_module: not a loadable module
 *   WX          a writable and executable section: the loader refuses it
 *   PCPUCODE    .data..percpu is code with a site: the loader does not load it
 */

	.macro site name, sec, off
	.org \off, 0xcc
	.type \name, @function
\name:
	call __SCT__foo
	.size \name, . - \name
	.endm

	.text
	.p2align 4
	site t_000, .text, 0x000
	site t_03c, .text, 0x03c
	.org 0x48, 0xcc

	.section .exit.text, "ax", @progbits
	site x_000, .exit.text, 0x000
	.org 0x09, 0xcc

	.section .text.unlikely, "ax", @progbits
	.p2align 4
	site u_02d, .text.unlikely, 0x02d
	.org 0x40, 0xcc

.ifndef NOINIT
	.section .init.text, "ax", @progbits
	site i_000, .init.text, 0x000
	site i_03e, .init.text, 0x03e
	.org 0x45, 0xcc
.endif

.ifdef WX
	.section .text.wx, "awx", @progbits
	.byte 0xc3
.endif

	.section .rodata, "a", @progbits
	.p2align 5
	.skip 0x11

	.section .modinfo, "a", @progbits
	.asciz "license=GPL"
.ifndef NOVERMAGIC
.ifdef NOUNLOAD
	.asciz "vermagic=6.1.0-50-cloud-amd64 SMP preempt modversions "
.else
.ifdef V612
	.asciz "vermagic=6.12.107+deb12-cloud-amd64 SMP preempt mod_unload modversions "
.else
.ifdef V510
	.asciz "vermagic=5.10.0-30-cloud-amd64 SMP mod_unload modversions "
.else
	.asciz "vermagic=6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions "
.endif
.endif
.endif
.endif
	.asciz "name=modlayout"

	.section __versions, "a", @progbits
	.p2align 5
	.skip 0x40

	.data
	.p2align 3
	.skip 0x18

	.section .data..ro_after_init, "aw", @progbits
	.p2align 3
	.skip 0x10

	.section __jump_table, "aw", @progbits
	.p2align 3
	.skip 0x20

.ifdef PCPUCODE
	.section .data..percpu, "ax", @progbits
	.p2align 6
	site n_003, .data..percpu, 0x003
.else
	.section .data..percpu, "aw", @progbits
	.p2align 6
	.skip 0x08
.endif

	.section .init.data, "aw", @progbits
	.p2align 3
	.skip 0x06

	.section .init.rodata, "a", @progbits
	.p2align 3
	.skip 0x03

	.section .exit.data, "aw", @progbits
	.p2align 3
	.skip 0x08

.ifndef NOTHISMOD
	.section .gnu.linkonce.this_module, "aw", @progbits
	.p2align 6
	.skip 0x380
.endif

	.bss
	.p2align 5
	.skip 0x100

	.section .note.Linux, "a", @note
	.p2align 2
	.skip 0x18

	.section .note.GNU-stack, "", @progbits
