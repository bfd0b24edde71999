"""Assembly for an object whose N compile units all share one line program
of M rows (from ../shared/repro/dwarf_shared_lines.py, issue 10 item 15):
memory grew with N x M when each unit decoded the shared program again.

    python3 dwarf_shared_lines.py N M [last] > x.s

With ``call_last`` the static call comes after the M rows (its row is the
last one), so that finding it decodes the whole program.
"""
import sys


def generate(n: int, m: int, call_last: bool = False) -> str:
    o = ['.file 1 "a.c"', ".text", ".globl f", ".type f,@function", "f:"]
    if not call_last:
        o += [".loc 1 1", "call __SCT__x"]
    for i in range(m):
        o += [f".loc 1 {i + 2}", "nop"]
    if call_last:
        o += [f".loc 1 {m + 2}", "call __SCT__x", "nop"]
    o += [".size f,.-f", ".globl __SCT__x", ".globl __SCK__x",
          '.section .debug_abbrev,"",@progbits', ".uleb128 1", ".uleb128 0x11", ".byte 0",
          ".uleb128 0x10", ".uleb128 0x17", ".byte 0,0", ".byte 0",
          ".macro cu", ".long .Le\\@ - .Ls\\@", ".Ls\\@:", ".short 4", ".long 0", ".byte 8",
          ".uleb128 1", ".long 0", ".Le\\@:", ".endm",
          '.section .debug_info,"",@progbits', f".rept {n}", "cu", ".endr"]
    return "\n".join(o) + "\n"


if __name__ == "__main__":
    sys.stdout.write(generate(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["last"]))
