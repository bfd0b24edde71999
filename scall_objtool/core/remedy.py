"""What to do about a fallback site: one table, reason -> remedy.

Every report (text, JSON, SARIF, the dashboard) takes its remedy from
:func:`remedy`, which knows each reason of ``vocabulary.REASONS``; a reason it does
not know gets a remedy that says none is known.  Where the fix is a build
flag, its spelling depends on the object's compiler, read from the object's
``.comment`` (:func:`compiler_of`: ``gcc``, ``clang`` or None when unknown or
mixed; then both spellings are given)::

    from scall_objtool.core.remedy import remedy
    r = remedy("crosses-cache-line", "clang")
    r.text, r.flags        # ('rebuild with ...', ('-malign-branch-boundary=64', ...))

The alignment flags make the assembler pad so that no ``call`` crosses or ends
at a 64-byte boundary, and raise the section's ``sh_addralign`` to 64 so that
the guarantee survives linking and module loading (GNU as
``-malign-branch-boundary=64 -malign-branch=call``, through gcc's ``-Wa,``;
clang's driver spells it without ``-Wa,`` and passes it to its integrated
assembler as ``-mllvm -x86-align-branch-boundary=64 -mllvm
-x86-align-branch=call``).  LLVM does not pad a call through the PLT
(``call f@PLT``, a default-visibility function in position-independent
code): there the trampoline must have hidden visibility, or the code be built
without -fpic/-fpie (the kernel is).
"""
from __future__ import annotations

from ..records import record

COMPILERS = ("gcc", "clang")

#: the call-alignment flags per compiler driver, for a 64-byte line
ALIGN_FLAGS = {
    "gcc": ("-Wa,-malign-branch-boundary=64", "-Wa,-malign-branch=call"),
    "clang": ("-malign-branch-boundary=64", "-malign-branch=call"),
}
#: the branch types that also align jmp (tail calls): GNU as joins with +,
#: clang's driver with a comma (it passes -mllvm -x86-align-branch=call+jmp)
WITH_JMP = {"gcc": "call+jmp", "clang": "call,jmp"}
SIBLING_FLAG = "-fno-optimize-sibling-calls"
#: neither assembler pads a branch that directly follows a data directive
#: (tests/test_remedy.py, testdata/src/remedy_ud2.c): the kernel 6.1 writes
#: the ud2 of BUG() so (ASM_UD2)
#: the padding lands inside alternatives' replacements too; 6.1 relocates a
#: call there only when the replacement is that one 5-byte call, so a padded
#: one calls into nowhere once patched: a 6.1 defconfig built with the flags
#: crashes at its first system call (docs/remedy.md, scripts/remedy-experiment)
KERNEL_LIMIT = ("in a Linux kernel, only where apply_alternatives() relocates a padded "
                "replacement: later kernels do (apply_relocation()), 6.1's does not and its "
                "kernel crashes at boot unless patched (scall-objtool's "
                "scripts/remedy/alternatives-relocate-6.1.patch)")
DATA_LIMIT = ("a call right after bytes written as data (.byte, as the kernel's ASM_UD2 "
              "writes ud2) is not padded: write those as an instruction")


def align_flags(compiler: str, line: int = 64, jmp: bool = False) -> tuple[str, ...]:
    """The call-alignment flags of ``compiler`` for a ``line``-byte cache line
    (``jmp``: tail calls too)."""
    flags = tuple(f.replace("=64", f"={line}") for f in ALIGN_FLAGS[compiler])
    return flags[:1] + (flags[1].replace("=call", "=" + WITH_JMP[compiler]),) if jmp else flags


@record(frozen=True)
class Remedy:
    """How a fallback site becomes patchable (``known`` False: no known way)."""
    reason: str
    text: str                       # one sentence: what to do
    flags: tuple[str, ...] = ()     # compiler flags to add (for the object's compiler)
    option: str | None = None       # the scall-objtool option that accepts such sites
    known: bool = True

    def to_json(self) -> dict:
        return {"text": self.text, "flags": list(self.flags), "option": self.option,
                "known": self.known}


def _spelled(compiler: str | None, line: int, jmp: bool) -> tuple[str, tuple[str, ...]]:
    """The alignment flags as words, and as flags (None: for each compiler)."""
    if compiler in COMPILERS:
        flags = align_flags(compiler, line, jmp)
        return " ".join(flags), flags
    gcc, clang = align_flags("gcc", line, jmp), align_flags("clang", line, jmp)
    return f"{' '.join(gcc)} (gcc) or {' '.join(clang)} (clang)", ()


def _crossing(reason: str, compiler: str | None, line: int, kind: str | None) -> Remedy:
    jmp = kind == "tail"            # a tail call allowed by --allow-tail: a jmp
    words, flags = _spelled(compiler, line, jmp)
    what = "call or jmp" if jmp else "call"
    text = (f"rebuild with the assembler's call alignment, {words}: it pads so that no "
            f"{what} crosses a {line}-byte line and raises the section's alignment to {line}"
            f"; {DATA_LIMIT}; {KERNEL_LIMIT}")
    if compiler != "gcc":
        text += " (clang pads no call through the PLT: give the trampoline hidden visibility)"
    if reason == "may-cross-cache-line":
        text += "; or, if the section is known to start N-aligned, pass --assume-align N"
    return Remedy(reason, text, flags)


def _tail(reason: str, compiler: str | None, line: int, kind: str | None) -> Remedy:
    return Remedy(reason, "pass --allow-tail if the runtime patcher rewrites jmp sites, or build "
                  f"the caller with {SIBLING_FLAG} so that the compiler keeps a call",
                  (SIBLING_FLAG,), "--allow-tail")


def _conditional_tail(reason: str, compiler: str | None, line: int, kind: str | None) -> Remedy:
    return Remedy(reason, f"build the caller with {SIBLING_FLAG}: the compiler then calls the "
                  "trampoline instead of jumping to it conditionally (no policy patches a jcc)",
                  (SIBLING_FLAG,))


def _prefixed(reason: str, compiler: str | None, line: int, kind: str | None) -> Remedy:
    return Remedy(reason, "no known remedy: a prefix written in the source (asm) stays, and a "
                  "5-byte store cannot replace the longer instruction; --policy kernel accepts "
                  "it where the patcher rewrites whole instructions (int3); an addr32 (67) "
                  "prefix the linker added when relaxing a GOT call goes away without -fno-plt",
                  known=False)


def _indirect(reason: str, compiler: str | None, line: int, kind: str | None) -> Remedy:
    return Remedy(reason, "build the caller without -fno-plt, or give the trampoline hidden "
                  "visibility: the compiler then emits a direct call (there is no rel32 to "
                  "patch in a call through the GOT)")


#: reason -> remedy maker, one entry per reason of vocabulary.REASONS (a test checks)
REMEDIES = {
    "tail-call": _tail,
    "conditional-tail-call": _conditional_tail,
    "prefixed": _prefixed,
    "indirect": _indirect,
    "crosses-cache-line": _crossing,
    "may-cross-cache-line": _crossing,
}


def remedy(reason: str, compiler: str | None = None, line: int = 64,
           kind: str | None = None) -> Remedy:
    """The remedy for a fallback ``reason`` of a site of ``kind`` (vocabulary.KINDS;
    None: a call) in an object built by ``compiler``."""
    make = REMEDIES.get(reason)
    if make is None:
        return Remedy(reason, f"no known remedy for {reason}", known=False)
    return make(reason, compiler if compiler in COMPILERS else None, line, kind)


def remedy_json(reason: str | None, compiler: str | None = None, line: int = 64,
                kind: str | None = None) -> dict | None:
    """``remedy(...).to_json()``, None for a patchable site (no reason)."""
    return None if reason is None else remedy(reason, compiler, line, kind).to_json()


def compiler_of(elf) -> str | None:
    """``gcc`` or ``clang`` from the object's ``.comment`` (the compiler's
    ident string); None when it has none, names neither, or names both (a
    linked image of mixed objects)."""
    sec = elf.section_by_name(".comment")
    if sec is None:
        return None
    data = elf.section_bytes(sec)
    clang = b"clang version" in data
    gcc = data.startswith(b"GCC:") or b"\0GCC:" in data    # an entry that starts so
    if not (clang and gcc):
        # (neither string holds a NUL: found in the bytes, it is in an entry)
        return "clang" if clang else "gcc" if gcc else None
    found = set()       # an entry may be both: the clang one counts
    for entry in data.split(b"\0"):
        if b"clang version" in entry:
            found.add("clang")
        elif entry.startswith(b"GCC:"):
            found.add("gcc")
    return found.pop() if len(found) == 1 else None
