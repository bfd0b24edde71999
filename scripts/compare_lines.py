"""Compare every site's frames with `addr2line -i -f` (used by
scripts/kernel-lines and scripts/bench --lines).

For each object: scan it without lines (kernel policy), look up the frames of
its sites with our reader (timed), and with one `addr2line -a -i -f -e OBJ
-j SECTION` process per section holding sites (timed; a linked image: one
process, by address).  Agreement is counted two ways: the caller's
(file, line) (what `source` reports) and the whole chain of frames.
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scall_objtool.core import Options  # noqa: E402
from scall_objtool.core.elf import ElfFile  # noqa: E402
from scall_objtool.core.pipeline import scan_elf  # noqa: E402
from scall_objtool.lines import Frame, addr2line, lookup, site_key  # noqa: E402


def _ours(elf, sites) -> tuple[list[list[Frame]], float]:
    keys = [site_key(s.section_index, s.offset, s.address) for s in sites]
    t0 = time.perf_counter()
    frames = lookup(elf, keys, {k: s.function for k, s in zip(keys, sites)})
    dt = time.perf_counter() - t0
    return [frames.get(k) or [Frame(None, None, None)] for k in keys], dt


def _theirs(path: str, sites) -> tuple[list[list[Frame]], float]:
    t0 = time.perf_counter()
    out: list = [None] * len(sites)
    if sites and sites[0].address is not None:
        for i, fr in enumerate(addr2line(path, None, [s.address for s in sites])):
            out[i] = fr
    else:
        by_sec = defaultdict(list)
        for i, s in enumerate(sites):
            by_sec[s.section].append(i)
        for sec, idx in by_sec.items():
            for i, fr in zip(idx, addr2line(path, sec, [sites[i].offset for i in idx])):
                out[i] = fr
    return out, time.perf_counter() - t0


def _llvm(path: str, sites) -> list[list[Frame]] | None:
    """llvm-symbolizer's frames (GNU output style) of sites in .text, the one
    section it can tell apart in a relocatable object; None without it."""
    import shutil
    if not shutil.which("llvm-symbolizer"):
        return None
    return addr2line(path, None, [s.offset if s.address is None else s.address for s in sites],
                     program="llvm-symbolizer")


def compare_tree(paths: list[Path], show: int = 10, label: str = "") -> int:
    """Every site against addr2line -i; where they differ, against
    llvm-symbolizer --inlining too (binutils 2.40 misses inline frames whose
    ranges are DW_FORM_rnglistx, as clang 14 emits)."""
    opts = Options(policy="kernel")
    n_sites = n_caller = n_chain = n_inlined = n_objs = 0
    n_differ_text = n_llvm = 0
    t_ours = t_theirs = t_scan = 0.0
    shown = 0
    for p in paths:
        t0 = time.perf_counter()
        elf = ElfFile(p.read_bytes(), str(p))
        res = scan_elf(elf, opts, sources=False)
        t_scan += time.perf_counter() - t0
        if not res.sites:
            continue
        n_objs += 1
        ours, dt = _ours(elf, res.sites)
        t_ours += dt
        theirs, dt = _theirs(str(p), res.sites)
        t_theirs += dt
        differ = []
        for s, a, b in zip(res.sites, ours, theirs):
            n_sites += 1
            n_inlined += len(a) > 1
            caller = a[-1][1:] == b[-1][1:]
            n_caller += caller
            n_chain += a == b
            if a != b:
                differ.append((s, a))
            if a != b and shown < show:
                shown += 1
                print(f"  differs: {p}: {s.section}+{s.offset:#x}\n    ours:      {a}\n"
                      f"    addr2line: {b}")
        text = [(s, a) for s, a in differ if s.section == ".text" or s.address is not None]
        llvm = _llvm(str(p), [s for s, _ in text]) if text else None
        if llvm is not None:
            n_differ_text += len(text)
            # llvm-symbolizer names functions in a relocatable object from the
            # symbol table, which mixes up sections: compare the locations
            n_llvm += sum([f[1:] for f in a] == [f[1:] for f in c]
                          for (_, a), c in zip(text, llvm))
    print(f"{label}: {n_objs} objects with sites, {n_sites} sites, {n_inlined} inlined (ours)")
    print(f"  caller (file, line) = addr2line -i outermost frame: {n_caller}/{n_sites}")
    print(f"  whole chain = addr2line -i frames:                  {n_chain}/{n_sites}")
    if n_chain != n_sites:
        print(f"  of the {n_sites - n_chain} that differ, {n_differ_text} in .text: "
              f"{n_llvm} equal llvm-symbolizer --inlining's frames (file, line)")
    print(f"  time: ours {t_ours:.2f} s, addr2line -i {t_theirs:.2f} s "
          f"(one process per object and section); scan without lines {t_scan:.2f} s")
    sys.stdout.flush()
    return 0 if n_chain == n_sites else 1


# ------------------------------------------------------------------ timing (scripts/bench --lines)

def time_ours(paths: list[str]) -> tuple[float, int]:
    """(seconds spent in our line lookups, sites) over ``paths``: the scan
    itself is not counted."""
    opts = Options(policy="kernel")
    total, n = 0.0, 0
    for p in paths:
        elf = ElfFile(Path(p).read_bytes(), p)
        res = scan_elf(elf, opts, sources=False)
        if res.sites:
            _, dt = _ours(elf, res.sites)
            total += dt
            n += len(res.sites)
    return total, n


def time_addr2line(paths: list[str]) -> tuple[float, int, int]:
    """(seconds, processes, largest max RSS in KiB) of `addr2line -a -i -f`,
    one process per object and section holding sites (by address in a
    linked image), addresses on stdin."""
    import os
    import subprocess
    opts = Options(policy="kernel")
    total, procs, rss = 0.0, 0, 0
    for p in paths:
        res = scan_elf(ElfFile(Path(p).read_bytes(), p), opts, sources=False)
        groups = defaultdict(list)
        for s in res.sites:
            if s.address is not None:
                groups[None].append(s.address)
            else:
                groups[s.section].append(s.offset)
        for sec, addrs in groups.items():
            cmd = ["addr2line", "-a", "-i", "-f", "-e", p] + (["-j", sec] if sec else [])
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            proc.stdin.write("".join(f"{a:#x}\n" for a in addrs).encode())
            proc.stdin.close()
            _, _, usage = os.wait4(proc.pid, 0)
            total += time.perf_counter() - t0
            procs += 1
            rss = max(rss, usage.ru_maxrss)
    return total, procs, rss


if __name__ == "__main__":
    # python3 compare_lines.py ours|addr2line PATH...  (one line of numbers)
    import json
    what, paths = sys.argv[1], sys.argv[2:]
    if what == "ours":
        t, n = time_ours(paths)
        print(json.dumps({"seconds": t, "sites": n}))
    else:
        t, n, r = time_addr2line(paths)
        print(json.dumps({"seconds": t, "processes": n, "rss_kib": r}))
