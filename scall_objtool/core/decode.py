"""Decode stage: prove each candidate by decoding its containing function.

A relocation is not an instruction.  For every candidate the containing
function is decoded with capstone from its first byte to the instruction that
holds the relocated field; only then is the instruction examined: its opcode
(after any prefixes), the position of the relocated field inside it, and its
destination, which must be the trampoline's entry (symbol + addend + the
distance from the field to the end of the instruction == symbol).

Each function is decoded at most once, from its start up to its last
candidate, however many candidates it holds.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate

# the C module: ``operator`` is a Python module over it (an object with
# candidates only: a clean one never imports this module)
from _operator import add

from ..records import record
from . import location
from .candidates import Candidate
from .elf import (
    ADDRESS_MASK,
    R_X86_64_GOTPCREL,
    R_X86_64_GOTPCRELX,
    R_X86_64_PC32,
    R_X86_64_PLT32,
    R_X86_64_REX_GOTPCRELX,
    STB_GLOBAL,
    STB_WEAK,
    STT_FILE,
    STT_FUNC,
    STT_SECTION,
    ElfFile,
    Section,
    display_name,
)
from .intervals import Innermost

LEGACY_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3})
DIRECT_RELOCS = frozenset({R_X86_64_PC32, R_X86_64_PLT32})
GOT_RELOCS = frozenset({R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX})

_CS = None
_BULK = None
_c_void_p = _byref = None        # ctypes', bound with the library


def _capstone():
    global _CS
    if _CS is None:
        import capstone
        _CS = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return _CS


#: capstone 5's ``cs_insn``: id (u32), address (u64) at 8, size (u16) at 16,
#: bytes[24] at 18, mnemonic[32] at 42, op_str[160] at 74, detail* at 240
_CS_INSN = (248, 8, 16, 42)
_CS_ARCH_X86, _CS_MODE_64 = 3, 1 << 3


def _library_path() -> str | None:
    """The capstone library the capstone package ships (capstone/lib), found
    without importing the package; None when it is elsewhere (or
    LIBCAPSTONE_PATH chooses another)."""
    import os
    from importlib.util import find_spec
    if os.environ.get("LIBCAPSTONE_PATH"):
        return None
    try:
        spec = find_spec("capstone")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    libdir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    return next((os.path.join(libdir, n) for n in ("libcapstone.so", "libcapstone.so.5")
                 if os.path.exists(os.path.join(libdir, n))), None)


def _bind(path: str):
    """(cs_disasm, cs_free, handle) of the capstone library at ``path`` (API 5.0,
    an x86-64 handle of our own), or None."""
    import ctypes
    import os
    try:
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_DEEPBIND", 0))
    except OSError:
        return None
    c_int_p = ctypes.POINTER(ctypes.c_int)
    lib.cs_version.restype = ctypes.c_int
    lib.cs_version.argtypes = (c_int_p, c_int_p)
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.cs_version(ctypes.byref(major), ctypes.byref(minor))
    if (major.value, minor.value) != (5, 0):
        return None
    lib.cs_open.restype = ctypes.c_int
    lib.cs_open.argtypes = (ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_size_t))
    handle = ctypes.c_size_t()
    if lib.cs_open(_CS_ARCH_X86, _CS_MODE_64, ctypes.byref(handle)) != 0:
        return None
    lib.cs_disasm.restype = ctypes.c_size_t
    lib.cs_disasm.argtypes = (ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                              ctypes.c_uint64, ctypes.c_size_t,
                              ctypes.POINTER(ctypes.c_void_p))
    lib.cs_free.restype = None
    lib.cs_free.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    return lib.cs_disasm, lib.cs_free, handle.value, _quiet_handle(lib, handle.value)


#: what the quiet handle must decode to the same instructions as a regular
#: handle before it is used: endbr64; call; cs call; je; call *rip; a VEX
#: and an EVEX move; rep stos; lock cmpxchg; nopw; ud2; ret; then two bytes
#: that do not decode
_REFERENCE = bytes.fromhex("f30f1efa e800000000 2ee800000000 0f8400000000 ff1500000000"
                           " c5fd6fc1 62f1fd486fc1 f3ab f0480fb10e 660f1f440000 0f0b c3"
                           " 0f04".replace(" ", ""))
_REFERENCE_INSNS = 12


def _quiet_handle(lib, regular: int) -> int:
    """An x86-64 handle that decodes without formatting each instruction's
    text (capstone's printer: 23% of a decode's time on kvm.ko's .text, for
    text the prover never reads; its mnemonics come from ``regular``).
    capstone 5 has no option for that: its printer is the third field of
    every ``cs_struct`` since capstone 2, after the arch and mode, and is set
    here to capstone's own ``cs_support``, a function that reads its
    argument as a number and formats nothing.  That is done only when the
    arch and mode are where that says, the field holds a function of the
    library itself (``dladdr``), and the handle then decodes a reference
    sequence to the instructions the regular one decodes, with no text;
    else ``regular`` is returned (and used for both)."""
    import ctypes
    handle = ctypes.c_size_t()
    if lib.cs_open(_CS_ARCH_X86, _CS_MODE_64, ctypes.byref(handle)) != 0:
        return regular
    base = handle.value
    try:
        if (ctypes.c_int.from_address(base).value,
                ctypes.c_int.from_address(base + 4).value) == (_CS_ARCH_X86, _CS_MODE_64):
            printer = ctypes.c_void_p.from_address(base + 8)
            home = _object_of(ctypes.cast(lib.cs_disasm, ctypes.c_void_p).value)
            if printer.value and home is not None and _object_of(printer.value) == home:
                original = printer.value
                printer.value = ctypes.cast(lib.cs_support, ctypes.c_void_p).value
                want, got = _decoded(lib, regular, _REFERENCE), _decoded(lib, base, _REFERENCE)
                if len(want) == _REFERENCE_INSNS and all(m for _a, _z, m in want) \
                        and not any(m for _a, _z, m in got) \
                        and [w[:2] for w in want] == [g[:2] for g in got]:
                    return base
                printer.value = original
    except (AttributeError, OSError, ValueError):
        pass
    lib.cs_close(ctypes.byref(handle))      # not used: the regular handle decodes
    return regular


def _object_of(address: int):
    """The base address of the loaded object holding ``address`` (dladdr),
    or None."""
    import ctypes

    class DlInfo(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                    ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]
    info = DlInfo()
    dladdr = ctypes.CDLL(None).dladdr
    dladdr.argtypes = (ctypes.c_void_p, ctypes.POINTER(DlInfo))
    return info.fbase if dladdr(address, ctypes.byref(info)) else None


def _decoded(lib, handle: int, code: bytes) -> list[tuple[int, int, bytes]]:
    """(address, size, mnemonic) of each instruction ``handle`` decodes in ``code``."""
    import ctypes
    insns = ctypes.c_void_p()
    n = lib.cs_disasm(handle, code, len(code), 0x1000, 0, ctypes.byref(insns))
    if not n:
        return []
    stride, addr_off, size_off, mn_off = _CS_INSN
    try:
        raw = ctypes.string_at(insns.value, n * stride)
    finally:
        lib.cs_free(insns, n)
    return [(int.from_bytes(raw[i * stride + addr_off:i * stride + addr_off + 8], "little"),
             int.from_bytes(raw[i * stride + size_off:i * stride + size_off + 2], "little"),
             raw[i * stride + mn_off:i * stride + mn_off + 32].split(b"\0", 1)[0])
            for i in range(n)]


def _bulk_layout():
    """(cs_disasm, cs_free, handle, struct size, address/size/mnemonic offsets)
    of capstone's C API 5.0, or False when it is not that.  The library is
    loaded with ctypes without importing the capstone package when it is where
    the package keeps it: the package's import (inspect, pathlib, subprocess,
    a module per architecture) costs more than proving every site of a large
    module."""
    global _BULK, _c_void_p, _byref
    if _BULK is None:
        import ctypes
        _c_void_p, _byref = ctypes.c_void_p, ctypes.byref
        path = _library_path()
        bound = _bind(path) if path else None
        if bound is None:
            import capstone             # the library the package found
            bound = _bind(capstone._cs._name)
        # (cs_disasm, cs_free, handle, struct size, offsets, quiet handle)
        _BULK = (*bound[:3], *_CS_INSN, bound[3]) if bound is not None else False
    return _BULK


def disassemble(code: bytes, base: int) -> tuple[list[int], list[int], object]:
    """Instruction starts and lengths of ``code`` (placed at ``base``), decoded
    linearly until the end or the first invalid instruction.

    Uses capstone's C ``cs_disasm`` once for the whole range (``_columns``:
    the fields it needs read from the returned array in bulk, which is freed
    at once -- most of each record is text nobody reads); the third value maps an
    instruction index to its mnemonic, decoding that one instruction again
    (a mnemonic is only shown for a candidate that is not a site)."""
    layout = _bulk_layout()
    if not layout or not code:
        starts, sizes, mnems = [], [], []
        for addr, size, mnem, _ops in _capstone().disasm_lite(code, base):
            starts.append(addr)
            sizes.append(size)
            mnems.append(mnem)
        return starts, sizes, mnems.__getitem__
    starts, sizes = _columns(code, base)
    starts, sizes = list(starts), list(sizes)

    def mnemonic(i: int) -> str:
        at = starts[i] - base
        return mnemonic_of(code[at:at + sizes[i]], starts[i])
    return starts, sizes, mnemonic


def _columns(code: bytes, base: int):
    """``disassemble``'s starts and lengths as compact sequences, for the
    shared decoder: the starts a memoryview of 'Q' items, the lengths bytes
    (indexing either gives an int, and ``bisect`` searches them), copied out
    of capstone's array at C speed -- no Python int per instruction (the
    corpus decodes four million of them, for a few thousand candidates)."""
    layout = _bulk_layout()
    if not layout or not code:
        starts, sizes, _mnemonic = disassemble(code, base)
        return starts, sizes
    cs_disasm, cs_free, _handle, stride, addr_off, size_off, _mn_off, quiet = layout
    insns = _c_void_p()
    n = cs_disasm(quiet, code, len(code), base, 0, _byref(insns))
    if n <= 0:
        return (), b""
    try:
        raw = _view(insns.value, n * stride)
        starts = memoryview(raw.cast("Q")[addr_off // 8::stride // 8].tobytes()).cast("Q")
        sizes = raw[size_off::stride].tobytes()     # an x86 instruction is <= 15 bytes
    finally:
        raw = None
        cs_free(insns, n)
    return starts, sizes


def mnemonic_of(insn: bytes, address: int) -> str:
    """The mnemonic of the one instruction ``insn`` (its bytes, at
    ``address``), as capstone names it."""
    layout = _bulk_layout()
    if not layout:
        return next(_capstone().disasm_lite(insn, address))[2]
    cs_disasm, cs_free, handle, stride, _addr_off, _size_off, mn_off, _quiet = layout
    insns = _c_void_p()
    n = cs_disasm(handle, insn, len(insn), address, 1, _byref(insns))
    if n <= 0:
        raise ValueError(f"no instruction at {address:#x}")
    try:
        field = bytes(_view(insns.value, stride)[mn_off:mn_off + 32])
    finally:
        cs_free(insns, n)
    return field.split(b"\0", 1)[0].decode("ascii", "replace")


_VIEW = None


def _view(address: int, size: int) -> memoryview:
    """The ``size`` bytes at ``address`` as a read-only memoryview, not copied.
    Through ``PyMemoryView_FromMemory`` (CPython): a ctypes array over them
    would be a new ctypes type for every size, one class built (and later
    collected as a cycle) per decode -- more than the decode of a small
    function costs."""
    global _VIEW
    if _VIEW:
        return _VIEW(address, size, 0x100)          # PyBUF_READ
    import ctypes
    if _VIEW is None:
        try:
            fn = ctypes.pythonapi.PyMemoryView_FromMemory
            fn.restype = ctypes.py_object
            fn.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
            _VIEW = fn
        except AttributeError:          # not CPython: an array type each time
            _VIEW = False
    if _VIEW:
        return _VIEW(address, size, 0x100)          # PyBUF_READ
    return memoryview((ctypes.c_char * size).from_address(address)).cast("B")


#: a fresh decode's largest chunk (for one capstone call)
MAX_CHUNK = 16 << 10
#: the longest x86 instruction: one that does not decode with this many bytes
#: available does not decode with fewer either
MAX_INSN = 15


class _Run:
    """Instructions decoded by one capstone call (a prefix of its result)."""
    __slots__ = ("starts", "sizes", "final")

    def __init__(self, starts, sizes, final: bool):
        self.starts, self.sizes = starts, sizes
        self.final = final          # decoding fails right after it, whatever the limit


class Decoding:
    """The result of one linear decode: consecutive pieces of runs."""

    def __init__(self, code: bytes, start: int, pieces: list[tuple[_Run, int, int]]):
        self.code = code
        self.pieces = pieces
        self.firsts = [run.starts[i] for run, i, _j in pieces] if len(pieces) > 1 else None
        last = pieces[-1] if pieces else None
        self.stop = last[0].starts[last[2] - 1] + last[0].sizes[last[2] - 1] if last else start

    def span(self, off: int) -> tuple[int, int] | None:
        """(start, length) of the decoded instruction holding ``off``."""
        if self.firsts is None:             # one piece (or none): the common case
            if not self.pieces:
                return None
            run, i, j = self.pieces[0]
        else:
            p = bisect_right(self.firsts, off) - 1
            if p < 0:
                return None
            run, i, j = self.pieces[p]
        k = bisect_right(run.starts, off, i, j) - 1
        if k < i or off >= run.starts[k] + run.sizes[k]:
            return None
        return run.starts[k], run.sizes[k]

    def at(self, off: int) -> tuple[int, int, str] | None:
        """(start, length, mnemonic) of the decoded instruction holding ``off``."""
        hit = self.span(off)
        if hit is None:
            return None
        start, size = hit
        return start, size, mnemonic_of(self.code[start:start + size], start)


class SectionDecoder:
    """Linear decodes of one section's code from many starts, sharing work.

    Decoding from two starts goes on identically once both reach a common
    instruction boundary (an instruction depends only on its own bytes), so
    each instruction is decoded once: a decode that reaches a boundary an
    earlier one decoded follows that one's result instead.  A fresh decode
    that may meet an earlier one works in chunks that double (64 bytes first,
    up to MAX_CHUNK) and stops at the first known boundary, so it costs
    O(the new bytes + 64); one past every earlier decode (functions that do
    not overlap) decodes in a single call.  ``decode(start, limit)``
    is exactly ``disassemble(code[start:limit], start)``: nested or
    overlapping functions no longer cost their overlap once per function."""

    def __init__(self, code: bytes):
        self.code = code
        self.owner: dict[int, _Run] = {}    # boundary -> the run that decoded it
        self.unindexed: list[_Run] = []     # runs not yet in ``owner``
        self.high = 0                       # every decoded boundary lies below this

    def _index(self) -> None:
        """Index the boundaries of the runs so far (only once decodes may meet:
        functions that do not overlap never pay for it).  A run's boundaries
        are new when it is made, so no boundary has two owners."""
        for run in self.unindexed:
            self.owner.update(dict.fromkeys(run.starts, run))
        self.unindexed.clear()

    def decode(self, start: int, limit: int) -> Decoding:
        code = self.code
        pieces: list[tuple[_Run, int, int]] = []
        pos, chunk = start, 64
        while pos < limit:
            ahead = pos < self.high         # may an earlier boundary lie at or after pos?
            if ahead:
                self._index()
                run = self.owner.get(pos)
                if run is not None:
                    starts, sizes = run.starts, run.sizes
                    i = bisect_left(starts, pos)
                    j = bisect_right(starts, limit - 1) - 1  # the last one starting before limit
                    if j >= i and starts[j] + sizes[j] > limit:
                        j -= 1                              # ... and ending within it
                    if j < i:
                        break               # the instruction at pos does not fit
                    pieces.append((run, i, j + 1))
                    if j + 1 < len(starts) or run.final:
                        break               # the next one does not fit, or does not decode
                    pos = starts[j] + sizes[j]
                    continue
            else:
                chunk = MAX_CHUNK           # nothing decoded ahead: nothing to meet
            lim = min(limit, pos + chunk)
            chunk = min(2 * chunk, MAX_CHUNK)
            starts, sizes = _columns(code[pos:lim], pos)
            cut = len(starts)
            if ahead and cut > 1:
                met = self.owner.keys() & starts       # pos itself is not among them
                if met:
                    cut = bisect_left(starts, min(met))
            whole = cut == len(starts)      # not cut short at an earlier decode
            end = starts[cut - 1] + sizes[cut - 1] if cut else pos
            # stopped short of lim: invalid for good if MAX_INSN bytes were there
            final = whole and end < lim and (
                end + MAX_INSN <= lim or lim == len(code))
            if cut:
                if cut < len(starts):
                    starts, sizes = starts[:cut], sizes[:cut]
                run = _Run(starts, sizes, final)
                self.unindexed.append(run)
                self.high = max(self.high, starts[-1] + 1)
                pieces.append((run, 0, cut))
            if whole and (final or lim == limit):
                break
            pos = end
        return Decoding(code, start, pieces)


# records, not dataclasses: importing dataclasses (it pulls in inspect) costs
# more than proving the sites of a large module
@record
class Insn:
    start: int
    length: int
    prefixes: bytes
    kind: str | None        # call, prefixed-call, tail, jcc-tail, indirect, or None
    field: int | None       # offset of the rel32/disp32 within the instruction
    mnemonic: str | None    # read for the message of a candidate that is not a site


@record
class Proof:
    """The verdict on one candidate."""
    candidate: Candidate
    insn: Insn | None           # None: decoding never reached the relocation
    function: str | None
    function_offset: int | None
    site_kind: str | None       # set when the candidate is a proven site
    detail: str                 # why it is not a site, when it is not


def analyse(code: bytes, start: int, length: int, mnemonic: str | None) -> Insn:
    """Classify the instruction bytes at ``start``: prefixes, opcode, field."""
    b = code[start:start + length]
    i = 0
    while i < length and b[i] in LEGACY_PREFIXES:
        i += 1
    if i < length and 0x40 <= b[i] <= 0x4F:
        i += 1                                   # REX
    prefixes = bytes(b[:i])
    kind = field = None
    if i < length:
        op = b[i]
        if op == 0xE8 and length == i + 5:
            kind, field = ("prefixed-call" if prefixes else "call"), i + 1
        elif op == 0xE9 and length == i + 5:
            kind, field = "tail", i + 1
        elif op == 0x0F and i + 1 < length and 0x80 <= b[i + 1] <= 0x8F and length == i + 6:
            kind, field = "jcc-tail", i + 2
        elif op == 0xFF and i + 1 < length:
            modrm = b[i + 1]
            reg, mod, rm = (modrm >> 3) & 7, modrm >> 6, modrm & 7
            if reg in (2, 4) and mod == 0 and rm == 5 and length == i + 6:
                kind, field = "indirect", i + 2          # call/jmp *disp32(%rip)
    return Insn(start, length, prefixes, kind, field, mnemonic)


class FunctionIndex:
    """Function and label symbols of one section, for containment queries at
    the ``offsets`` given (the candidates of a section, ascending or not).

    Only the symbols that can answer one of those queries are named (their
    names read and made printable): the functions that contain an offset, and
    every symbol at the greatest symbol start at or below one.  A kernel
    module's ``.text`` has thousands of symbols and a handful of sites."""

    def __init__(self, elf: ElfFile, sec: Section, offsets):
        cols = elf.syms
        rank = {STB_GLOBAL: 0, STB_WEAK: 1}
        base = sec.addr if elf.linked else 0       # symbol values are addresses there
        queries = sorted(set(offsets))
        strtab = elf.strtab
        # a name is empty or a .L label when its first bytes say so; read (and
        # checked) through symbol_name_bytes when the table does not end in NUL
        plain = strtab.endswith(b"\0")
        limit = len(strtab)
        # from the symbol columns, not a Symbol record each (kvm.ko: 3,000 symbols)
        info, value, size, name = cols.info, cols.value, cols.size, cols.name
        in_sec = cols.in_section(sec.index)
        # the symbols near the queries only, when that is cheaper (see _near)
        found = _near(elf, sec, in_sec, queries, base) if plain else None
        if found is None:
            found = []                  # (start, size, symbol index, is a function)
            for i in in_sec:
                stype = info[i] & 0xF
                start = value[i] - base
                if stype in (STT_SECTION, STT_FILE) or not 0 <= start <= sec.size:
                    continue
                off = name[i]
                if plain and off < limit:
                    if strtab[off] == 0 or strtab.startswith(b".L", off):
                        continue
                else:
                    raw = elf.symbol_name_bytes(off)     # the file's error, if any
                    if not raw or raw.startswith(b".L"):
                        continue
                found.append((start, size[i], i, stype == STT_FUNC))
        starts = sorted({f[0] for f in found})
        # the greatest start at or below each query: every symbol there may be
        # the answer (the first in (rank, name) order)
        nearest = {starts[k - 1] for k in (bisect_right(starts, q) for q in queries) if k}
        funcs, labels = [], []
        for start, length, i, is_func in found:
            holds = False
            if is_func and length > 0:
                k = bisect_left(queries, start)
                holds = k < len(queries) and queries[k] < start + length
            if not holds and start not in nearest:
                continue
            entry = (start, rank.get(info[i] >> 4, 2),
                     display_name(elf.symbol_name_bytes(name[i])), length, i)
            (funcs if is_func else labels).append(entry)
        funcs.sort()
        self.funcs = funcs
        # funcs are in (start, rank, name, ...) order already
        self._innermost = Innermost([(f[0], f[0] + f[3], f[1:], f) for f in funcs if f[3] > 0],
                                    presorted=True)
        labels = sorted(labels + funcs)
        self.labels = labels
        self.label_starts = [lb[0] for lb in labels]

    def containing(self, off: int):
        """(name, start, end) of the function holding ``off`` (the innermost:
        the greatest start, then the first in (rank, name) order, a global
        before a local alias); else the nearest preceding symbol; else
        (None, 0, None).  ``off`` is one of the offsets the index was made
        for; cheapest when asked in increasing order."""
        best = self._innermost.query(off)
        if best is not None:
            value, _rank, name, size, _i = best
            return (name, value, value + size)
        k = bisect_right(self.label_starts, off)
        if k == 0:
            return (None, 0, None)
        value = self.label_starts[k - 1]
        # several symbols at one address: the first in (rank, name) order
        j = bisect_left(self.label_starts, value)
        _v, _rank, name, _size, _i = self.labels[j]
        return (name, value, None)


#: symbols ``_near`` examined, over the process (a count of work, for the tests)
NEAR_EXAMINED = [0]


def _near(elf: ElfFile, sec: Section, in_sec: list[int], queries: list[int],
          base: int = 0) -> list | None:
    """What ``FunctionIndex`` keeps of the symbols ``in_sec`` of a section
    with a NUL-terminated string table (``base``: the section's address in a
    linked image, whose symbol values are addresses), for the ascending
    ``queries``, found without looking at every symbol: the symbols sorted by
    start (at C speed), each query walks back from the last symbol starting
    at or below it, over the symbols at the nearest usable start and the
    functions that may still contain it (while the greatest end so far lies
    past it).  A query that no new symbol starts before since the previous
    one needs no walk (what holds it held the previous one).  (start, size,
    index, is a function) for each, as FunctionIndex's own pass gives them;
    None when a name offset lies outside the string table (that pass reports
    it) or the walks would examine more symbols than there are (huge symbols
    over many others: the pass costs less)."""
    cols = elf.syms
    info, value, size, name = cols.info, cols.value, cols.size, cols.name
    strtab = elf.strtab
    if not in_sec or max(map(name.__getitem__, in_sec)) >= len(strtab):
        return None if in_sec else []
    by_start = sorted(in_sec, key=value.__getitem__)
    starts = list(map(value.__getitem__, by_start))
    if base:
        starts = [v - base for v in starts]
    reach = list(accumulate(map(add, starts, map(size.__getitem__, by_start)), max))
    budget = len(in_sec)
    usable: dict[int, bool] = {}
    kept: dict[int, tuple] = {}
    last = None
    for q in queries:
        j = bisect_right(starts, q) - 1
        if j == last:
            continue
        last = j
        nearest = None
        while j >= 0:
            start = starts[j]
            if nearest is not None and start < nearest and reach[j] <= q:
                break
            budget -= 1
            if budget < 0:
                NEAR_EXAMINED[0] += len(in_sec)
                return None
            i = by_start[j]
            j -= 1
            ok = usable.get(i)
            if ok is None:
                off = name[i]
                ok = usable[i] = not (info[i] & 0xF in (STT_SECTION, STT_FILE)
                                      or not 0 <= start <= sec.size or strtab[off] == 0
                                      or strtab.startswith(b".L", off))
            if not ok:
                continue
            if nearest is None:
                nearest = start
            is_func = info[i] & 0xF == STT_FUNC
            if start == nearest or (is_func and start + size[i] > q):
                kept[i] = (start, size[i], i, is_func)
    NEAR_EXAMINED[0] += len(in_sec) - budget
    return list(kept.values())


def prove(elf: ElfFile, candidates: list[Candidate]) -> list[Proof]:
    """Decode the functions that hold candidates and judge each candidate."""
    proofs: list[Proof] = []
    by_section: dict[int, list[Candidate]] = {}
    for c in candidates:
        by_section.setdefault(c.section.index, []).append(c)
    for sec_index, cands in by_section.items():
        sec = elf.sections[sec_index]
        if not sec.executable:
            for c in cands:
                proofs.append(Proof(c, None, None, None, None, "data"))
            continue
        code = elf.section_bytes(sec)
        index = FunctionIndex(elf, sec, [c.offset for c in cands])
        groups: dict[tuple, list[Candidate]] = {}
        for c in cands:
            groups.setdefault(index.containing(c.offset), []).append(c)
        image = elf if elf.linked else None
        decoder = SectionDecoder(code)
        for (fname, fstart, fend), group in groups.items():
            proofs.extend(_prove_function(decoder, fname, fstart, fend, group, image, sec))
    return proofs


def _prove_function(decoder: SectionDecoder, fname, fstart: int, fend,
                    group: list[Candidate], image: ElfFile | None = None,
                    sec: Section | None = None):
    code = decoder.code
    end = min(fend if fend is not None else len(code), len(code))
    group.sort(key=lambda c: c.offset)
    found: dict[int, tuple[int, int]] = {}
    stop = fstart
    pending = [c for c in group if fstart <= c.offset < end]
    if pending:
        # decode up to the instruction holding the last candidate, no further
        limit = min(end, pending[-1].offset + 16)
        decoded = decoder.decode(fstart, limit)
        stop = decoded.stop
        for c in pending:
            hit = decoded.span(c.offset)
            if hit is not None:
                found[c.offset] = hit
    out = []
    for c in group:
        fofs = c.offset - fstart if fname is not None else None
        hit = found.get(c.offset)
        if hit is None:
            if not fstart <= c.offset < end:
                why = "relocation lies outside the decoded range"
            else:
                why = f"decoding from {fname or 'section start'} stopped at offset {stop:#x}"
            out.append(Proof(c, None, fname, fofs, None, why))
            continue
        # the mnemonic is read (the instruction decoded again) for a message only
        insn = analyse(code, *hit, None)
        kind, why = _verdict(c, insn, code, image, sec)
        if kind is None:
            insn.mnemonic = mnemonic_of(code[insn.start:insn.start + insn.length], insn.start)
            kind, why = _verdict(c, insn, code, image, sec)
        if kind is not None and fname is not None:
            fofs = insn.start - fstart        # a site is reported at its instruction
        out.append(Proof(c, insn, fname, fofs, kind, why))
    return out


def _verdict(c: Candidate, insn: Insn, code: bytes, image: ElfFile | None,
             sec: Section | None) -> tuple[str | None, str]:
    """``_judge``, or in a linked image (``image``) ``_judge_image``."""
    return _judge(c, insn) if image is None else _judge_image(c, insn, code, image, sec)


def _judge(c: Candidate, insn: Insn) -> tuple[str | None, str]:
    """Is this instruction a control transfer to the trampoline's entry?"""
    if insn.kind is None or insn.field is None:
        return None, f"{insn.mnemonic} takes the trampoline's address"
    if c.offset - insn.start != insn.field:
        return None, f"relocation is not the {insn.mnemonic} target field"
    # destination relative to the relocation symbol, then to the trampoline
    dest = c.addend + (insn.length - insn.field) + c.sym_value_bias
    if insn.kind == "indirect":
        if c.rtype not in GOT_RELOCS:
            return None, f"{insn.mnemonic} through memory at the trampoline, not its GOT slot"
        if dest != 0:
            return None, f"{insn.mnemonic} through a GOT slot at offset {dest:+d}"
        return "indirect", ""
    if c.rtype not in DIRECT_RELOCS:
        return None, f"{insn.mnemonic} with an unexpected relocation type"
    if dest != 0:
        return None, f"{insn.mnemonic} to {c.tramp.name}{dest:+#x}, not to its entry"
    return insn.kind, ""



def _judge_image(c: Candidate, insn: Insn, code: bytes, image: ElfFile,
                 sec: Section) -> tuple[str | None, str]:
    """In a linked image the bytes are final: the destination is computed from
    the instruction itself (a relocation, if any, only pointed at it)."""
    if insn.kind is None or insn.field is None:
        return None, f"{insn.mnemonic} takes the trampoline's address"
    if c.offset - insn.start != insn.field:
        return None, f"relocation is not the {insn.mnemonic} target field"
    at = insn.start + insn.field
    disp = int.from_bytes(code[at:at + 4], "little", signed=True)
    target = (sec.addr + insn.start + insn.length + disp) & ADDRESS_MASK
    if insn.kind == "indirect":
        slot = image.read_at(target, 8)
        if slot is None or int.from_bytes(slot, "little") != c.tramp.value:
            return None, f"{insn.mnemonic} through memory that does not hold the trampoline"
        return "indirect", ""
    if target != c.tramp.value:
        return None, f"{insn.mnemonic} to {target:#x}, not to {c.tramp.name}"
    return insn.kind, ""


def instruction_at(elf: ElfFile, sec: Section, off: int):
    """(start, length, mnemonic, " in func+x") of the instruction holding
    ``off``, decoding its function from the start; None if not reached."""
    return instructions_at(elf, sec, [off])[off]


def instructions_at(elf: ElfFile, sec: Section, offsets) -> dict[int, tuple | None]:
    """:func:`instruction_at` for many offsets of one section: one function
    index, and each function decoded once, up to the last offset it holds."""
    index = FunctionIndex(elf, sec, offsets)
    code = elf.section_bytes(sec)
    groups: dict[tuple, list[int]] = {}
    for off in sorted(set(offsets)):
        groups.setdefault(index.containing(off), []).append(off)
    out: dict[int, tuple | None] = {}
    decoder = SectionDecoder(code)
    for (fname, fstart, fend), offs in groups.items():
        end = min(fend if fend is not None else len(code), len(code), offs[-1] + 16)
        # an instruction is at most 15 bytes: the one holding an offset ends
        # before offset + 16, so decoding further changes nothing before it
        decoded = decoder.decode(fstart, end)
        for off in offs:
            hit = decoded.at(off)
            if hit is None:
                out[off] = None
                continue
            where = f" in {location(fname, hit[0] - fstart)}" if fname else ""
            out[off] = (*hit, where)
    return out
