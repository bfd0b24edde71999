# One site, and a section whose name ends in ".static_call_sites": the safety
# tests rename a section to ".static_call_sites" by pointing its sh_name at
# the tail of that string (.text, .symtab, .strtab, .shstrtab, or this data).
.text
.globl f
.type f,@function
f: call __SCT__x
ret
.size f,.-f
.globl __SCT__x
.globl __SCK__x
.section .foo.static_call_sites,"a",@progbits
.byte 0
