"""The dashboard: one self-contained HTML page from one or more JSON reports.

The page embeds the reports' data as compact JSON and renders everything
client-side (tables in pages, charts and cache-line pictures as SVG, built on
demand for the visible rows), so it stays small and quick for a whole kernel.
It loads nothing from the network (a Content-Security-Policy forbids it) and
works from ``file://``.  The same reports give the same bytes.

API for the CLI::

    html = dashboard_from_files(paths, labels)  # labels: --label values (may be fewer)
    html = render_dashboard(reports, labels)    # parsed documents, one label each

Both raise InputError for a report that cannot be read or is not a scan/check
JSON document (its path, or label, as ``.path``) and UsageError for more
labels than reports.  ``scall-objtool dashboard`` writes the page.
"""
from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from math import gcd

from ..core.remedy import remedy
from ..errors import UsageError
from ..vocabulary import KIND_TABLE, REASON_TABLE
from . import findings
from .jsondoc import read_json
from .readback import Doc, read

#: bump when the embedded data layout changes (the page's JS checks it)
DATA_VERSION = 1
#: the words the page explains, from the one table of each (vocabulary.py):
#: each reason's meaning, and the opcode bytes of each kind for the pictures
VOCAB = {"reasons": {r.name: r.meaning for r in REASON_TABLE.values()},
         "opcodes": {k.name: list(k.opcode) for k in KIND_TABLE.values()}}


class _Strings:
    """A string table: every repeated string is stored once."""

    def __init__(self):
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def __call__(self, s: str | None) -> int | None:
        if s is None:
            return None
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.items)
            self.items.append(s)
        return i


def labels_for(paths: list[str], labels: list[str] | None) -> list[str]:
    """The label of each report: ``--label`` values in order, then file names
    (the path as given when two reports share a file name)."""
    labels = list(labels or [])
    if len(labels) > len(paths):
        raise UsageError(f"{len(labels)} labels for {len(paths)} reports")
    names = [os.path.basename(p) or p for p in paths]
    out = []
    for i, p in enumerate(paths):
        if i < len(labels):
            out.append(labels[i])
        else:
            out.append(names[i] if names.count(names[i]) == 1 else p)
    return out


def _verdict(s: findings.LintSite) -> str:
    return "patchable" if s.patchable else f"fallback: {s.reason}"


def _diff_data(old: Doc, new: Doc, st: _Strings) -> dict:
    scope = "all" if old.kind == new.kind == "scan" else "fallback"

    def sites(doc: Doc):
        return doc.lint_sites if scope == "all" else [s for s in doc.lint_sites
                                                      if not s.patchable]

    d = findings.diff(sites(old), sites(new))
    newfb = {id(s) for s in d.new_fallback}

    def src(s):
        return [st(s.source["file"]), s.source["line"]] if s.source else None

    rows = []
    for s in d.added:
        rows.append(["added", st(new.rel(s.object)), st(s.where), st(s.kind), st(s.trampoline),
                     None, st(_verdict(s)), src(s), id(s) in newfb])
    for s in d.removed:
        rows.append(["removed", st(old.rel(s.object)), st(s.where), st(s.kind),
                     st(s.trampoline), st(_verdict(s)), None, src(s), False])
    for o, n in d.changed:
        kind = n.kind if o.kind == n.kind else f"{o.kind} -> {n.kind}"
        rows.append(["changed", st(new.rel(n.object)), st(n.where), st(kind),
                     st(n.trampoline), st(_verdict(o)), st(_verdict(n)), src(n),
                     id(n) in newfb])
    return {"scope": scope,
            "counts": {"added": len(d.added), "removed": len(d.removed),
                       "changed": len(d.changed), "unchanged": len(d.unchanged),
                       "moved": d.moved, "new_fallback": len(d.new_fallback)},
            "rows": rows}


def build_data(docs: list[Doc], labels: list[str]) -> dict:
    """The data the page embeds (compact: strings are indices into ``strings``)."""
    if not docs:
        raise UsageError("no reports")
    if len(labels) != len(docs):
        raise UsageError(f"{len(labels)} labels for {len(docs)} reports")
    st = _Strings()
    cur = docs[-1]
    summ = cur.summary
    trend = []
    for doc, label in zip(docs, labels):
        s = doc.summary
        trend.append({"label": label, "kind": doc.kind, "version": doc.version,
                      "policy": doc.policy.get("name"),
                      **{k: s[k] for k in ("objects", "sites", "patchable", "fallback",
                                           "references")},
                      "by_reason": s["by_reason"]})
    sites = []
    line = cur.cache_line
    for s in cur.sites:
        src = s["source"]
        inl = s["inlined"]
        addr, align, pl = s["address"], s["alignment"], s["placement"]
        g = gcd(align, line) if align is not None else None
        # placement arithmetic here: JavaScript numbers lose a kernel address's
        # low bits (above 2**53), so the page gets the address as text, the
        # exact start in the line where known (a module laid out by the loader
        # model: its section's offset in a page-aligned region; else the
        # address), and the offset modulo the known alignment
        exact = basis = None
        model_offset = pl.get("offset") if isinstance(pl, dict) and \
            pl.get("basis") == "model" else None
        if isinstance(model_offset, int) and not isinstance(model_offset, bool):
            exact, basis = (model_offset + s["offset"]) % line, "placement"
        elif addr is not None:
            exact, basis = addr % line, "address"
        where = [None if addr is None else f"{addr:#x}", exact, basis,
                 g, None if g is None else s["offset"] % g]
        sites.append([
            st(cur.rel(s["object"])), st(s["section"]), s["offset"], where,
            st(s["function"]), s["function_offset"], st(s["trampoline"]), st(s["kind"]),
            s["length"], s["prefixes"], s["crossing"],
            None if s["patchable"] else st(s["reason"]), s["alignment"],
            st(src["file"]) if src else None, src["line"] if src else None,
            [[st(f["function"]), st(f["file"]), f["line"]] for f in inl] if inl else None,
            s["placement"], s.get("state"),
            None if s["patchable"] else st(remedy(s["reason"], s["compiler"], line,
                                                  s["kind"]).text)])
    # the remedy of each reason: for the compiler of the sites shown, if one
    compilers = {s["compiler"] for s in cur.sites if not s["patchable"]}
    compiler = compilers.pop() if len(compilers) == 1 else None
    data = {
        "v": DATA_VERSION,
        "kind": cur.kind,
        "label": labels[-1],
        "version": cur.version,
        "policy": cur.policy,
        "line": cur.cache_line,
        "root": cur.root,
        "summary": {k: summ[k] for k in ("objects", "sites", "patchable", "fallback",
                                         "references")},
        "by_kind": sorted(summ["by_kind"].items()),
        "by_reason": sorted(summ["by_reason"].items()),
        "remedies": {r: remedy(r, compiler, line).text for r in sorted(summ["by_reason"])},
        "vocab": VOCAB,
        "tramps": [[st(t), v["sites"], v["patchable"], v["fallback"]]
                   for t, v in summ["by_trampoline"].items()],
        "objs": [[st(cur.rel(o["path"])), o["sites"], o["patchable"], o["fallback"],
                  o["references"]] for o in cur.objects],
        "sites": sites,
        "check": cur.check,
        "trend": trend,
        "diff": _diff_data(docs[-2], cur, st) if len(docs) > 1 else None,
    }
    data["strings"] = st.items
    return data


def _asset(name: str) -> str:
    return resources.files("scall_objtool").joinpath("assets", name).read_text("utf-8")


def _embed(data: dict) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' (escaped in strings,
    the only place JSON can hold them)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_docs(docs: list[Doc], labels: list[str]) -> str:
    data = build_data(docs, labels)
    title = f"scall-objtool dashboard: {labels[-1]}"
    parts = {"TITLE": html.escape(title), "CSS": _asset("dashboard.css"),
             "DATA": _embed(data), "JS": _asset("dashboard.js")}
    # one pass, so that nothing substituted is substituted again
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], _asset("dashboard.html"))


def render_dashboard(reports: list[dict], labels: list[str]) -> str:
    """The HTML page of parsed JSON reports (``scan``/``check --format json``),
    oldest first; the last is the one shown in full, the others make the trend.
    InputError (path = the report's label) when a document is malformed."""
    if len(labels) != len(reports):
        raise UsageError(f"{len(labels)} labels for {len(reports)} reports")
    last = len(reports) - 1
    return render_docs([read(r, label, detail=i == last)
                        for i, (r, label) in enumerate(zip(reports, labels))], labels)


def dashboard_from_files(paths: list[str], labels: list[str] | None = None) -> str:
    """Read the reports and render the page; InputError names the bad file."""
    labels = labels_for(paths, labels)     # a usage error before any reading
    # only the last report is shown site by site; the others make the trend
    from ..inputs import show
    docs = [read(read_json(p), show(p), detail=i == len(paths) - 1)
            for i, p in enumerate(paths)]
    return render_docs(docs, labels)
