"""Source lines: where each site is, as ``addr2line -i -f -e OBJ -j SECTION
OFFSET`` says, read by our own DWARF reader (the ``dwarf`` package).

A site's frames run from the innermost (the line-table row at the site, in
the function inlined last) outwards, each outer frame being the call site
(``DW_AT_call_file``/``DW_AT_call_line``) of the inlined function inside
it; the last is the function the code belongs to after inlining.  A site's
``source`` is that last frame's ``{file, line}`` (the caller the developer
edits); ``inlined`` lists the frames before it, innermost first, as
``{function, file, line}``.  A line that is unknown (line 0, no row) is
``None`` with the file kept when known.  A chain deeper than MAX_FRAMES
keeps the outermost frame and the innermost others.

``addr2line()`` runs binutils' addr2line the same way, for the tests and the
scripts that compare with it (scripts/kernel-lines, scripts/bench --lines).

Nothing here raises: malformed DWARF leaves every ``source`` null and adds a
warning.
"""
from __future__ import annotations

import bisect

from ..core.elf import ElfFile
from .dwarf import (AT_CALL_FILE, AT_CALL_LINE, AT_COMP_DIR, AT_SIBLING, AT_STMT_LIST, TAG_SHIFT,
                    Debug, DwarfError, LineProgram, Reader, _DESCEND, _FUNCS, text)

__all__ = ["Frame", "MAX_FRAMES", "addr2line", "attach_sources", "lookup", "parse_addr2line",
           "site_key"]


class Frame(tuple):
    """(function, file, line): function and file None when unknown, line None
    when unknown or 0."""
    __slots__ = ()

    def __new__(cls, function, file, line):
        return tuple.__new__(cls, (function, file, line or None))

    def __getnewargs__(self):          # pickled by a worker of a split lookup
        return tuple(self)

    function = property(lambda self: self[0])
    file = property(lambda self: self[1])
    line = property(lambda self: self[2])


def site_key(section_index: int | None, offset: int, address: int | None) -> int:
    """The number a site is looked up by: its address in a linked image, its
    section-tagged offset in a relocatable object."""
    if address is not None:
        return address
    return ((section_index + 1) << TAG_SHIFT) | offset


def _in_ranges(sites: list[int], ranges) -> list[int]:
    """The sites (sorted) inside any of ``ranges``, sorted."""
    if len(ranges) == 1:
        lo, hi = ranges[0]
        return sites[bisect.bisect_left(sites, lo):bisect.bisect_left(sites, hi)]
    hit = set()
    for lo, hi in ranges:
        hit.update(sites[bisect.bisect_left(sites, lo):bisect.bisect_left(sites, hi)])
    return sorted(hit)


#: frames kept of a deeper inline chain: the outermost and the innermost others
MAX_FRAMES = 64


def _unlink(node) -> tuple:
    """The chain of function DIEs (attrs) ending at ``node``, outermost first;
    at most MAX_FRAMES (the outermost and the innermost ones), so that a
    crafted nesting costs no more than that per site."""
    out = []
    while node is not None and len(out) < MAX_FRAMES - 1:
        out.append(node[0])
        node = node[1]
    if node is not None:
        root = node[2] if node[2] is not None else node
        out.append(root[0])
    return tuple(reversed(out))


def _spans(sites: list[int], ranges) -> list[tuple[int, int]]:
    """The sites (sorted) inside ``ranges`` as disjoint, sorted, non-empty
    index intervals [i, j) into ``sites``."""
    if len(ranges) == 1:
        lo, hi = ranges[0]
        i, j = bisect.bisect_left(sites, lo), bisect.bisect_left(sites, hi)
        return [(i, j)] if i < j else []
    bl = bisect.bisect_left
    spans = [(i, j) for lo, hi in ranges if (i := bl(sites, lo)) < (j := bl(sites, hi))]
    if len(spans) < 2:              # (most DIEs of several ranges hold no site)
        return spans
    spans.sort()
    out: list[list[int]] = []
    for i, j in spans:
        if i >= j:
            continue
        if out and i <= out[-1][1]:
            out[-1][1] = max(out[-1][1], j)
        else:
            out.append([i, j])
    return [(i, j) for i, j in out]


class _Depth:
    """Per site (an index), how many DIEs of the current path contain it: a
    segment tree with range add and maximum.  ``label(x)`` gives every site at
    the maximum the label x (lazily, the latest label winning); ``labels()``
    lists them (-1: none)."""

    def __init__(self, n: int):
        self.n = n
        size = 1
        while size < max(n, 1):
            size *= 2
        self.size = size
        self.mx = [0] * (2 * size)
        self.pending = [0] * (2 * size)
        self.lab = [-1] * (2 * size)
        for k in range(size + n, 2 * size):     # padding leaves never reach the maximum
            self.mx[k] = -(1 << 40)
        for k in range(size - 1, 0, -1):
            self.mx[k] = max(self.mx[2 * k], self.mx[2 * k + 1])

    def _push(self, k: int) -> None:
        mx, pend, lab = self.mx, self.pending, self.lab
        a, x = pend[k], lab[k]
        for c in (2 * k, 2 * k + 1):
            if a:
                mx[c] += a
                pend[c] += a
            if x >= 0 and mx[c] == mx[k]:
                lab[c] = x
        pend[k] = 0
        lab[k] = -1

    def add(self, i: int, j: int, v: int, k: int = 1, lo: int = 0, hi: int | None = None):
        if hi is None:
            hi = self.size
        if j <= lo or hi <= i:
            return
        if i <= lo and hi <= j:
            self.mx[k] += v
            self.pending[k] += v
            return
        self._push(k)
        mid = (lo + hi) // 2
        self.add(i, j, v, 2 * k, lo, mid)
        self.add(i, j, v, 2 * k + 1, mid, hi)
        self.mx[k] = max(self.mx[2 * k], self.mx[2 * k + 1])

    def top(self) -> int:
        return self.mx[1]

    def label(self, x: int) -> None:
        self.lab[1] = x

    def labels(self) -> list[int]:
        for k in range(1, self.size):
            self._push(k)
        return self.lab[self.size:self.size + self.n]


class _FewDepth:
    """``_Depth`` for a few sites (at most FEW_SITES): plain per-site counts,
    each operation a pass over them at C speed where it can be (a unit's
    sites are mostly a handful: the segment tree's recursion cost more)."""

    def __init__(self, n: int):
        self.count = [0] * n
        self.lab = [-1] * n

    def add(self, i: int, j: int, v: int) -> None:
        count = self.count
        for k in range(i, j):
            count[k] += v

    def top(self) -> int:
        return max(self.count)

    def label(self, x: int) -> None:
        count, lab = self.count, self.lab
        m = max(count)
        for k, c in enumerate(count):
            if c == m:
                lab[k] = x

    def labels(self) -> list[int]:
        return self.lab


#: the most sites of a unit that ``_FewDepth`` counts (256: 1.2 % fewer instructions
#: than 32 on the build tree, the same on the 6.1 vmlinux)
FEW_SITES = 256


class _Placed:
    """Site indices marked once each (a union-find of the next unmarked one),
    and how many are marked."""

    def __init__(self, n: int):
        self.next = list(range(n + 1))
        self.count = 0

    def _find(self, i: int) -> int:
        nxt = self.next
        root = i
        while nxt[root] != root:
            root = nxt[root]
        while nxt[i] != root:
            nxt[i], i = root, nxt[i]
        return root

    def mark(self, i: int, j: int) -> None:
        k = self._find(i)
        while k < j:
            self.next[k] = k + 1
            self.count += 1
            k = self._find(k + 1)


class _Lookup:
    def __init__(self, elf: ElfFile, sites: list[int]):
        self.debug = Debug(elf)
        self.reader = Reader(self.debug)
        self.sites = sites
        self.programs: dict[int, LineProgram] = {}

    def close(self) -> None:
        """Let go of the sections now: they and their reader refer to one
        another, and a cycle waits for the cyclic collector, which a batch of
        objects may not run for many objects (the copies of their debug
        sections piling up: 40 MB on a kernel build tree)."""
        self.programs.clear()
        self.reader.close()
        self.debug.close()

    def program(self, u) -> LineProgram | None:
        top = u.top
        if top is None or AT_STMT_LIST not in top[1]:
            return None
        off = top[1][AT_STMT_LIST][1]
        prog = self.programs.get(off)
        if prog is None:
            comp = top[1].get(AT_COMP_DIR)
            comp_dir = text(self.reader.string(u, comp)) if comp is not None else None
            prog = self.programs[off] = LineProgram(self.reader, off, comp_dir, u)
        return prog

    def units_of_sites(self) -> tuple[dict, list]:
        """{unit offset: sites its ranges cover} and the units without ranges."""
        by_unit: dict[int, list[int]] = {}
        owner: dict[int, int] = {}
        rest = self.sites
        aranges = self.debug[".debug_aranges"]
        if aranges is not None:
            covered = self._aranges(aranges, owner)
            rest = [s for s in self.sites if s not in covered]
        rangeless = []
        if rest:
            for u in self.reader.units():
                if u.top is None or u.top[0] not in (0x11, 0x3c, 0x4a):   # + skeleton
                    continue
                rng = self.reader.ranges(u, u.top[1])
                if rng is None:
                    rangeless.append(u.offset)
                    continue
                for s in _in_ranges(rest, rng):
                    owner.setdefault(s, u.offset)
        for s in self.sites:
            if s in owner:
                by_unit.setdefault(owner[s], []).append(s)
        return by_unit, rangeless

    def _aranges(self, sec, owner: dict) -> set:
        d, size, p = sec.data, sec.size, 0
        sites = self.sites
        covered = set()
        while p + 4 <= size:
            start = p
            length, osz, q = sec.u(p, 4), 4, p + 4
            if length == 0xFFFFFFFF:
                length, osz, q = sec.u(p + 4, 8), 8, p + 12
            end = q + length
            if end > size or length == 0:
                raise DwarfError(".debug_aranges: a set runs past the section")
            cu = sec.u(q + 2, osz)
            asz = d[q + 2 + osz]
            if asz not in (4, 8):
                raise DwarfError(f".debug_aranges: address size {asz}")
            q += 4 + osz
            q = start + -(-(q - start) // (2 * asz)) * (2 * asz)
            while q + 2 * asz <= end:
                lo, n = sec.u(q, asz), sec.u(q + asz, asz)
                q += 2 * asz
                if lo == 0 and n == 0:
                    break
                for s in sites[bisect.bisect_left(sites, lo):bisect.bisect_left(sites, lo + n)]:
                    if s not in owner:
                        owner[s] = cu
                        covered.add(s)
            p = end
        return covered

    def run(self) -> dict[int, list[Frame]]:
        reader = self.reader
        by_unit, rangeless = self.units_of_sites()
        # each distinct line program runs once, over the sites of every unit using it
        runs: dict[int, tuple[LineProgram, set]] = {}
        for uoff, ss in by_unit.items():
            prog = self.program(reader.unit_at(uoff))
            if prog is not None:
                runs.setdefault(id(prog), (prog, set()))[1].update(ss)
        assigned = {s for ss in by_unit.values() for s in ss}
        left = [s for s in self.sites if s not in assigned]
        if left:
            for uoff in rangeless:
                prog = self.program(reader.unit_at(uoff))
                if prog is not None:
                    runs.setdefault(id(prog), (prog, set()))[1].update(left)
        found: dict[int, tuple] = {}
        for prog, ss in runs.values():
            ss = sorted(ss)
            prog.match(ss, found, self.debug.relocatable, len(ss))
        # the unit each found site's frames come from
        unit_of = {s: uoff for uoff, ss in by_unit.items() for s in ss}
        per_unit: dict[int, list[int]] = {}
        for s in self.sites:
            if s in found:
                uoff = unit_of.get(s, found[s][2].unit.offset)
                per_unit.setdefault(uoff, []).append(s)
        out: dict[int, list[Frame]] = {}
        for uoff, ss in per_unit.items():
            u = reader.unit_at(uoff)
            chains = self.chains(u, ss)
            # the frames past the innermost depend on the chain alone: built once
            # a chain, shared by its sites
            shared: dict[int, tuple] = {}
            for s in ss:
                line, fidx, prog = found[s]
                node = chains.get(s)
                outer = shared.get(id(node))
                if outer is None:
                    outer = shared[id(node)] = self.outer_frames(u, _unlink(node))
                name, tail = outer
                out[s] = [Frame(name, prog.file_name(fidx), line), *tail]
        return out

    def chains(self, u, sites: list[int]) -> dict[int, tuple]:
        """For each site, the innermost function DIE that contains it, as a
        node (attrs, parent node, outermost node or None); see ``_unlink``.

        A site is inside a DIE when the ranges of the DIE and of each of its
        ancestors that has ranges contain it.  Those sets are never listed:
        ``_Depth`` counts, per site, the DIEs on the current path containing
        it, so a DIE is entered, left and asked "does it hold a site?" at a
        cost of its ranges times log(sites); the last function DIE holding a
        site labels it, lazily.  Deep nests of DIEs over many sites (a crafted
        input) cost depth + sites, not depth x sites."""
        reader = self.reader
        top = u.top
        chains: dict[int, tuple] = {}
        if top is None or not top[2]:
            return chains
        n = len(sites)
        depth = _FewDepth(n) if n <= FEW_SITES else _Depth(n)
        placed = _Placed(n)         # sites inside an outermost function already walked
        nodes: list[tuple] = []     # label -> chain node
        budget = 16 * (len(self.debug[".debug_info"].data) + n) + (1 << 20)
        _, p = reader.die(u, top[3])
        # (ranges counted on the path, chain, index intervals added by this DIE)
        stack = [(0, None, None)]
        while stack:
            # declarations, abstract instances, types, variables, and the
            # functions whose range (read where it is) holds no site (most
            # functions of a unit): skipped undecoded
            ab, p = reader.next_die(u, p, sites=sites)
            if ab is None:
                level, _, added = stack.pop()
                if added:
                    for i, j in added:
                        depth.add(i, j, -1)
                if len(stack) == 1 and placed.count == n:
                    break           # every site's function is walked: the rest cannot hold one
                continue
            tag = ab.tag
            level, chain, _ = stack[-1]
            if tag in _DESCEND:
                # a block's own ranges are not consulted: BFD nests functions
                # by DIE depth alone (gcc's DWARF 4 block ranges can be empty)
                p = p + ab.fixed if ab.fixed is not None else reader._skip_attrs(u, ab, p)
                if ab.children:
                    stack.append((level, chain, None))
                continue
            attrs: dict = {}
            p = reader._attrs(u, ab, p, attrs)
            rng = reader.ranges(u, attrs)
            spans = [] if rng is None else _spans(sites, rng)
            if spans:
                budget -= len(spans)
                if budget < 0:
                    raise DwarfError("DIE ranges over the sites beyond any compiler's output "
                                     "(a crafted input): inline chains not read")
                for i, j in spans:
                    depth.add(i, j, 1)
                if depth.top() <= level:        # no site is inside every enclosing range
                    for i, j in spans:
                        depth.add(i, j, -1)
                    spans = []
            if tag in _FUNCS and spans:
                if chain is None and level == 0:
                    for i, j in spans:
                        placed.mark(i, j)
                chain = (attrs, chain, chain[2] or chain) if chain else (attrs, None, None)
                depth.label(len(nodes))
                nodes.append(chain)
            if ab.children and spans:
                stack.append((level + 1, chain, spans))
                continue
            if spans:
                for i, j in spans:
                    depth.add(i, j, -1)
            if ab.children:
                # a function without a site: its DW_AT_sibling, when it has one,
                # is where its children end
                sib = attrs.get(AT_SIBLING)
                p = sib[1] if sib is not None and p < sib[1] <= u.end \
                    else reader.skip_children(u, p)
            if len(stack) == 1 and placed.count == n:
                break
        for k, label in enumerate(depth.labels()):
            if label >= 0:
                chains[sites[k]] = nodes[label]
        return chains

    def outer_frames(self, u, chain: tuple) -> tuple:
        """(the innermost function's name, the frames outside it) of a chain:
        a site's frames are its line-table row in that function, then these."""
        reader = self.reader
        if not chain:
            return None, ()
        prog = self.program(u)
        names, frames = [], []
        for i in range(len(chain) - 1, -1, -1):
            attrs = chain[i]
            names.append(reader.name(u, attrs))
            cf, cl = attrs.get(AT_CALL_FILE), attrs.get(AT_CALL_LINE)
            if i:
                file = prog.file_name(cf[1]) if cf is not None and prog is not None else None
                frames.append((file, cl[1] if cl is not None else 0))
        return names[0], tuple(Frame(n, f, ln) for n, (f, ln) in zip(names[1:], frames))


#: sites of a linked image from which ``lookup(jobs=N)`` splits the work over
#: processes (the 6.1 vmlinux has 4,275), and the fewest sites a part takes
SPLIT_SITES, SPLIT_PART = 2048, 1024
#: (ELF file, parts) of the split lookup under way, for its forked workers
_SPLIT: tuple | None = None


def _frames(elf: ElfFile, sites: list[int]) -> dict[int, list[Frame]]:
    look = _Lookup(elf, sites)
    try:
        return look.run()
    finally:
        look.close()


def _split_part(k: int) -> dict[int, list[Frame]]:
    elf, parts = _SPLIT
    return _frames(elf, parts[k])


def _ignore_interrupts() -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent decides


def split_parts(sites: list[int], jobs: int) -> list[list[int]]:
    """The sorted ``sites`` in consecutive parts, one a process: at most
    ``jobs``, none smaller than SPLIT_PART (one part: no split)."""
    if jobs < 2 or len(sites) < SPLIT_SITES:
        return [sites]
    n = min(jobs, len(sites) // SPLIT_PART)
    step = -(-len(sites) // n)
    return [sites[i:i + step] for i in range(0, len(sites), step)]


def _split_frames(elf: ElfFile, parts: list[list[int]]) -> dict[int, list[Frame]] | None:
    """The frames of every part, the first in this process and the others in
    forked workers (the file's bytes shared, not copied); None where forking is
    not available or this is already a worker.  Each site's frames depend on
    its own unit alone, so the parts give what one pass gives."""
    global _SPLIT
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods() or mp.parent_process() is not None:
        return None
    import concurrent.futures as cf
    _SPLIT = (elf, parts)
    try:
        with cf.ProcessPoolExecutor(len(parts) - 1, mp_context=mp.get_context("fork"),
                                    initializer=_ignore_interrupts) as pool:
            futures = [pool.submit(_split_part, k) for k in range(1, len(parts))]
            frames = _frames(elf, parts[0])
            for f in futures:
                frames.update(f.result())
        return frames
    finally:
        _SPLIT = None


def lookup(elf: ElfFile, keys: list[int], symbols: dict[int, str | None] | None = None,
           jobs: int = 1) -> dict[int, list[Frame]]:
    """The frames of every site key (see ``site_key``) that the DWARF covers,
    innermost first.  Where no DWARF function contains a site, its function
    is ``symbols[key]`` (the ELF symbol, as BFD falls back to).  Raises
    DwarfError (or another exception on malformed input); ``attach_sources``
    is the form that never raises.  ``jobs``: a linked image with many sites
    is looked up by up to that many processes (``split_parts``): the same
    frames, sooner (the CPU time is about one pass's)."""
    sites = sorted(set(keys))
    if not sites or (elf.section_by_name(".debug_info") is None
                     and elf.section_by_name(".zdebug_info") is None):
        return {}
    frames = None
    parts = split_parts(sites, jobs) if elf.linked else [sites]
    if len(parts) > 1:
        try:
            frames = _split_frames(elf, parts)
        except Exception:       # one pass again: its error is the one to report
            frames = None
    if frames is None:
        frames = _frames(elf, sites)
    if symbols:
        for k, fr in frames.items():
            if len(fr) == 1 and fr[0].function is None and symbols.get(k):
                fr[0] = Frame(symbols[k], fr[0].file, fr[0].line)
    return frames


def frame_json(f: Frame) -> dict:
    return {"function": f.function, "file": f.file, "line": f.line}


def attach_sources(elf: ElfFile, result, fallback_only: bool = False, jobs: int = 1) -> None:
    """Fill ``site.source`` and ``site.inlined`` of every site (``fallback_only``:
    of the fallback sites, the only ones a check shows; ``jobs``: see
    ``lookup``); never raises."""
    sites = [s for s in result.sites if not (fallback_only and s.patchable)]
    keys = [site_key(s.section_index, s.offset, s.address) for s in sites]
    if not keys:
        return
    try:
        frames = lookup(elf, keys, jobs=jobs)
    except Exception as e:  # malformed DWARF must not cost the scan
        frames = {}
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result.warnings.append(f"cannot read the DWARF line table: {type(e).__name__}"
                               + (f": {detail}" if detail else ""))
    shown: dict[int, dict] = {}         # frames shared by sites are shown once

    def as_json(f: Frame) -> dict:
        d = shown.get(id(f))
        if d is None:
            d = shown[id(f)] = frame_json(f)
        return d
    for site, key in zip(sites, keys):
        fr = frames.get(key)
        if not fr or (fr[-1].file is None and fr[-1].line is None and len(fr) == 1):
            site.source, site.inlined = None, []
            continue
        outer = fr[-1]
        site.source = None if outer.file is None and outer.line is None else \
            {"file": outer.file, "line": outer.line}
        site.inlined = [as_json(f) for f in fr[:-1]]


# ------------------------------------------------------------------ addr2line

def parse_addr2line(out: str) -> list[list[Frame]]:
    """Frames per address from ``addr2line -a -i -f`` output, innermost first
    (function "??", file "??", line "?" or 0 mean unknown)."""
    result: list[list[Frame]] = []
    lines_ = out.split("\n")
    i = 0
    while i < len(lines_):
        ln = lines_[i]
        i += 1
        if not ln:
            continue
        if ln.startswith("0x") and all(c in "0123456789abcdef" for c in ln[2:]):
            result.append([])
            continue
        func, loc = ln, lines_[i]
        i += 1
        if loc.endswith(")") and " (discriminator " in loc:
            loc = loc[:loc.rindex(" (discriminator ")]
        file, _, num = loc.rpartition(":")
        result[-1].append(Frame(None if func == "??" else func,
                                None if file in ("??", "") else file,
                                int(num) if num.isdigit() else None))
    return result


def addr2line(path: str, section: str | None, addresses: list[int],
              program: str = "addr2line") -> list[list[Frame]]:
    """``addr2line -a -i -f -e PATH [-j SECTION] ADDR...``: the frames of
    each address, innermost first.  One process."""
    import subprocess
    cmd = [program, "-a", "-i", "-f", "-e", path]
    if "llvm" in program:
        cmd.insert(1, "--output-style=GNU")
    if section is not None:
        cmd += ["-j", section]
    out = subprocess.run(cmd, input="\n".join(f"{a:#x}" for a in addresses) + "\n",
                         capture_output=True, text=True, errors="surrogateescape",
                         check=True).stdout
    frames = parse_addr2line(out)
    if len(frames) != len(addresses):
        raise ValueError(f"addr2line answered {len(frames)} of {len(addresses)} addresses")
    return frames
