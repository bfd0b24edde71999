"""Read a JSON report back for the dashboard and the metrics exporter.

Both ``scan --format json`` (every site, per object) and ``check --format
json`` (the fallback sites as ``findings``) carry the same ``summary``; a
:class:`Doc` holds what both renderers need from either.  The shipped schema
(``schema/*.json``, checked by jsonschema-rs) is the one structural check, so
that a malformed document is one :class:`InputError`, never a traceback.

Object directories: the object paths of a report are shown relative to their
longest common directory (a kernel tree's ``kernel/``), and an object's
*directory* is the directory of that relative path (``drivers/net``), ``.`` at
the top; an archive member counts in the archive's directory.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from ..errors import InputError
from .findings import LintSite
from .jsondoc import report_from_json, validate


@dataclass
class Doc:
    """One report: the summary and the sites it lists."""
    name: str                       # file name (or label) for messages
    kind: str                       # "scan" or "check"
    version: str
    policy: dict
    summary: dict                   # objects, sites, patchable, fallback, references, by_*
    objects: list[dict]             # summary.by_object entries
    sites: list[dict]               # scan: every site; check: the findings
    lint_sites: list[LintSite]
    check: dict | None = None
    root: str = ""                  # common directory of the object paths
    _rel: dict = field(default_factory=dict, repr=False)

    @property
    def cache_line(self) -> int:
        line = self.policy.get("cache_line")
        return line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else 64

    def rel(self, path: str) -> str:
        """An object path relative to the report's common directory."""
        r = self._rel.get(path)
        if r is None:
            r = self._rel[path] = relative_to(path, self.root)
        return r

    def directory(self, path: str) -> str:
        return object_dir(self.rel(path))


def _bad(name: str, why: str):
    from . import esc           # a key or value of the document, and the name, as text
    raise InputError(f"not a scall-objtool JSON report (scan or check --format json): "
                     f"{esc(why)}", esc(name))


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def read(data, name: str, detail: bool = True, checked: bool = False) -> Doc:
    """A scan or check document as a :class:`Doc`; InputError if it does not
    match its shipped schema (the one structural check; ``checked``: the caller
    made the document itself, as ``scan --format openmetrics`` does, and it is
    not checked again).  Without ``detail`` the site dicts are left out
    (``sites`` is empty; the lint sites and the summary are read all the same)."""
    if not isinstance(data, dict):
        _bad(name, "the top level is not an object")
    is_check = "findings" in data or "check" in data
    if not checked:
        if data.get("schema_version") != 1:
            _bad(name, f"schema_version is {data.get('schema_version')!r}, expected 1")
        validate(data, "check-v1.json" if is_check else "report-v1.json",
                 lambda why: _bad(name, why))
        if is_check:        # a check report's summary is the scan's: checked by its schema
            validate(data["summary"], "report-v1.json", lambda why: _bad(name, f"summary.{why}"),
                     part="summary")
    summary = data["summary"]
    by_object = summary["by_object"]
    version = data["tool"]["version"]
    # only plain fields: the renderers show them as they are
    policy = {k: v for k, v in data["policy"].items() if
              v is None or isinstance(v, (str, bool)) or _count(v)}
    check = None
    if is_check:
        kind = "check"
        check = {k: data["check"][k] for k in ("passed", "findings", "failing", "max_fallback",
                                               "baseline", "baselined", "fixed")}
        # findings the baseline lacks (reports from before it was recorded: the rest)
        check["new"] = check["findings"] - check["baselined"]
        raw = [(f["object"], f) for f in data["findings"]]
        objects = [{"path": o, "sites": [f]} for o, f in raw]
        gone = []
        for i, f in enumerate(data.get("fixed", [])):
            # a baseline's finding that is gone: shown apart, with the fields of a site
            if not all(isinstance(f.get(k), t) for k, t in _FIXED_FIELDS):
                _bad(name, f"fixed[{i}] lacks the fields of a site")
            gone.append((f["object"], f))
    else:
        kind = "scan"
        objects = data["objects"]
        # the object's compiler, for each site's remedy
        raw = [(obj["path"], s if obj.get("compiler") is None
                else {**s, "compiler": obj["compiler"]})
               for obj in objects for s in obj["sites"]]
        gone = []
    lint_sites = report_from_json({"policy": policy, "objects": objects}, name,
                                  schema_name=None).sites
    sites = [_site(obj, s) for obj, s in raw] if detail else []
    if detail:
        sites += [{**_site(obj, s), "state": "fixed"} for obj, s in gone]
    if check is None or check.get("baseline") is None:
        for site in sites:          # new or known only mean something against a baseline
            site["state"] = None
    paths = [o["path"] for o in by_object] + [s["object"] for s in sites]
    return Doc(name=name, kind=kind, version=version, policy=policy, summary=summary,
               objects=by_object, sites=sites, lint_sites=lint_sites, check=check,
               root=common_root(paths))


#: what a check finding lacks (no instruction bytes, no placement)
_ABSENT = {"address": None, "length": None, "alignment": None, "prefixes": "",
           "placement": None, "inlined": None}


#: what a fixed finding (from the baseline) must carry to be shown
_FIXED_FIELDS = (("object", str), ("section", str), ("offset", int), ("trampoline", str),
                 ("kind", str), ("patchable", bool))

#: a finding's baseline_state as the dashboard groups it
_STATE = {"new": "new", "unchanged": "known", "updated": "known", "absent": "fixed"}


def _site(obj: str, s: dict) -> dict:
    """A site as the renderers take it: its fields, its object, its state
    against the baseline (new / known / fixed) and its compiler."""
    out = {**_ABSENT, "compiler": None, **s, "object": obj}
    state = _STATE.get(s.get("baseline_state"))
    if state is None and isinstance(s.get("baselined"), bool):
        state = "known" if s["baselined"] else "new"     # reports before baseline_state
    out["state"] = state
    return out


# ------------------------------------------------------------- directories
def _split(path: str) -> str:
    """An archive member ``dir/lib.a(m.o)`` lives at ``dir/lib.a``."""
    if path.endswith(")") and "(" in path:
        return path[:path.index("(")]
    return path


def common_root(paths: list[str]) -> str:
    """The longest common directory of the objects' files ('' if none)."""
    dirs = {posixpath.dirname(_split(p).replace(os.sep, "/")) for p in paths}
    absolute = {d.startswith("/") for d in dirs}
    if len(absolute) != 1:
        return ""
    parts = [[c for c in d.split("/") if c] for d in sorted(dirs)]
    common = parts[0]
    for p in parts[1:]:
        m = 0
        while m < min(len(common), len(p)) and p[m] == common[m]:
            m += 1
        common = common[:m]
    root = "/".join(common)
    return "/" + root if absolute == {True} else root


def relative_to(path: str, root: str) -> str:
    p = path.replace(os.sep, "/")
    if not root:
        return p
    prefix = root if root.endswith("/") else root + "/"
    return p[len(prefix):] if p.startswith(prefix) else p


def object_dir(rel: str) -> str:
    d = posixpath.dirname(_split(rel))
    return d or "."
