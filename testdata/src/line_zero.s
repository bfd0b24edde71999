/* A static call whose line-table row has line 0 (what clang emits for code
 * with no line): the line is unknown and must be null, never ":0".  The
 * line program is written by hand (gas drops `.loc 1 0`). */
	.text
	.globl	f
	.type	f, @function
f:
	nop
	call	__SCT__x
	ret
	.size	f, . - f
	.globl	__SCT__x
	.globl	__SCK__x

	.section .debug_abbrev, "", @progbits
	.uleb128 1, 0x11		/* DW_TAG_compile_unit */
	.byte	0			/* no children */
	.uleb128 0x10, 0x17		/* DW_AT_stmt_list, DW_FORM_sec_offset */
	.uleb128 0, 0
	.byte	0

	.section .debug_info, "", @progbits
	.long	.Linfo_end - .Linfo_ver
.Linfo_ver:
	.short	4
	.long	.debug_abbrev
	.byte	8
	.uleb128 1
	.long	.debug_line
.Linfo_end:

	.section .debug_line, "", @progbits
	.long	.Lline_end - .Lline_ver
.Lline_ver:
	.short	4
	.long	.Lhdr_end - .Lhdr
.Lhdr:
	.byte	1, 1, 1			/* min_inst, max_ops, default_is_stmt */
	.byte	-5, 14, 13		/* line_base, line_range, opcode_base */
	.byte	0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1
	.byte	0			/* no include directories */
	.asciz	"/src/z.c"
	.uleb128 0, 0, 0
	.byte	0
.Lhdr_end:
	.byte	0, 9, 2			/* DW_LNE_set_address f */
	.quad	f
	.byte	3			/* advance_line +6: line 7 */
	.sleb128 6
	.byte	1			/* copy: f+0 line 7 */
	.byte	2, 1			/* advance_pc 1 */
	.byte	3			/* advance_line -7: line 0 */
	.sleb128 -7
	.byte	1			/* copy: f+1 (the call) line 0 */
	.byte	2, 5, 3, 9, 1		/* f+6 line 9 */
	.byte	2, 1, 0, 1, 1		/* advance_pc 1, end_sequence */
.Lline_end:
