"""Read a JSON report back for the dashboard and the metrics exporter.

Both ``scan --format json`` (every site, per object) and ``check --format
json`` (the fallback sites as ``findings``) carry the same ``summary``; a
:class:`Doc` holds what both renderers need from either, checked so that a
malformed document is one :class:`InputError`, never a traceback.

Object directories: the object paths of a report are shown relative to their
longest common directory (a kernel tree's ``kernel/``), and an object's
*directory* is the directory of that relative path (``drivers/net``), ``.`` at
the top; an archive member counts in the archive's directory.
"""
from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field

from ..errors import InputError
from ..findings import LintSite
from ..model import KINDS, REASONS
from ..remedy import COMPILERS
from .jsondoc import report_from_json, validate

CROSSINGS = ("never", "always", "depends")
_COUNTS = ("sites", "patchable", "fallback", "references")


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


def _check_counts(name: str, where: str, d, keys) -> None:
    if not isinstance(d, dict):
        _bad(name, f"{where} is not an object")
    for k in keys:
        if not _count(d.get(k)):
            _bad(name, f"{where}.{k} is not a count")


def _check_map(name: str, where: str, d, allowed=None) -> None:
    if not isinstance(d, dict):
        _bad(name, f"{where} is not an object")
    for k, v in d.items():
        if allowed is not None and k not in allowed:
            _bad(name, f"{where} has an unknown key {k!r}")
        if not _count(v):
            _bad(name, f"{where}.{k} is not a count")


def read(data, name: str, detail: bool = True) -> Doc:
    """A scan or check document as a :class:`Doc`; InputError if malformed.
    Without ``detail`` the site dicts are left out (``sites`` is empty; the
    lint sites and the summary are read and checked all the same)."""
    if not isinstance(data, dict):
        _bad(name, "the top level is not an object")
    if data.get("schema_version") != 1:
        _bad(name, f"schema_version is {data.get('schema_version')!r}, expected 1")
    validate(data, "check-v1.json" if "findings" in data or "check" in data
             else "report-v1.json", lambda why: _bad(name, why))
    summary = data.get("summary")
    _check_counts(name, "summary", summary, ("objects", *_COUNTS))
    _check_map(name, "summary.by_kind", summary.get("by_kind"), KINDS)
    _check_map(name, "summary.by_reason", summary.get("by_reason"), REASONS)
    tramps = summary.get("by_trampoline")
    if not isinstance(tramps, dict):
        _bad(name, "summary.by_trampoline is not an object")
    for t, v in tramps.items():
        _check_counts(name, f"summary.by_trampoline[{t!r}]", v, ("sites", "patchable",
                                                                 "fallback"))
    by_object = summary.get("by_object")
    if not isinstance(by_object, list):
        _bad(name, "summary.by_object is not a list")
    for i, o in enumerate(by_object):
        _check_counts(name, f"summary.by_object[{i}]", o, _COUNTS)
        if not isinstance(o.get("path"), str):
            _bad(name, f"summary.by_object[{i}].path is not a string")
    tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
    version = tool.get("version") if isinstance(tool.get("version"), str) else "?"
    policy = data.get("policy") if isinstance(data.get("policy"), dict) else {}
    # only plain fields: the renderers show them as they are
    policy = {k: v for k, v in policy.items() if isinstance(k, str) and (
        v is None or isinstance(v, (str, bool)) or _count(v))}
    check = None
    if "findings" in data or "check" in data:
        kind = "check"
        findings = data.get("findings")
        if not isinstance(findings, list) or not isinstance(data.get("check"), dict):
            _bad(name, "a check report needs 'check' and a 'findings' list")
        check = data["check"]
        _check_counts(name, "check", check, ("findings", "failing", "max_fallback",
                                             "baselined", "fixed"))
        if not isinstance(check.get("passed"), bool):
            _bad(name, "check.passed is not true or false")
        if check.get("baseline") is not None and not isinstance(check["baseline"], str):
            _bad(name, "check.baseline is not a string")
        check = {k: check[k] for k in ("passed", "findings", "failing", "max_fallback",
                                       "baseline", "baselined", "fixed")}
        # findings the baseline lacks (reports from before it was recorded: the rest)
        check["new"] = check["findings"] - check["baselined"]
        raw = []
        for i, f in enumerate(findings):
            if not isinstance(f, dict) or not isinstance(f.get("object"), str):
                _bad(name, f"findings[{i}] has no 'object'")
            raw.append((f["object"], f, f"findings[{i}]"))
        fixed = data.get("fixed", [])
        if not isinstance(fixed, list):
            _bad(name, "'fixed' is not a list")
        gone = []
        for i, f in enumerate(fixed):
            if not isinstance(f, dict) or not isinstance(f.get("object"), str):
                _bad(name, f"fixed[{i}] has no 'object'")
            gone.append((f["object"], f, f"fixed[{i}]"))
        # lint's reader checks every site field; feed it the findings as objects
        wrapped = {"schema_version": 1, "policy": policy,
                   "objects": [{"path": o, "sites": [f]} for o, f, _ in raw]}
    else:
        kind = "scan"
        objects = data.get("objects")
        if not isinstance(objects, list):
            _bad(name, "no 'objects' list")
        raw = []
        for i, obj in enumerate(objects):
            if not isinstance(obj, dict) or not isinstance(obj.get("sites"), list) \
                    or not isinstance(obj.get("path"), str):
                _bad(name, f"objects[{i}] has no 'path' and 'sites'")
            comp = obj.get("compiler")      # the object's, for each site's remedy
            raw.extend((obj["path"], s if comp is None or not isinstance(s, dict)
                        else {**s, "compiler": comp}, f"objects[{i}].sites[{j}]")
                       for j, s in enumerate(obj["sites"]))
        wrapped = data
        gone = []
    try:
        lint_sites = report_from_json(wrapped, name, schema_name=None).sites
    except InputError as e:
        raise InputError(e.message.replace("(scan --format json)", "(scan or check "
                                           "--format json)"), name) from None
    sites = [_site(name, obj, s, where) for obj, s, where in raw] if detail else []
    if detail:      # a check report's fixed findings: shown apart (state "fixed")
        sites += [{**_site(name, obj, s, where), "state": "fixed"} for obj, s, where in gone]
    if check is None or check.get("baseline") is None:
        for site in sites:          # new or known only mean something against a baseline
            site["state"] = None
    paths = [o["path"] for o in by_object] + [s["object"] for s in sites]
    return Doc(name=name, kind=kind, version=version, policy=policy, summary=summary,
               objects=by_object, sites=sites, lint_sites=lint_sites, check=check,
               root=common_root(paths))


def _opt_count(name, where, s, key):
    v = s.get(key)
    if v is not None and not _count(v):
        _bad(name, f"{where}.{key} is not a non-negative integer")
    return v


def _site(name: str, obj: str, s: dict, where: str) -> dict:
    """The fields the renderers use, checked (lint's reader checked the rest)."""
    out = {"object": obj}
    for k in ("section", "offset", "function", "function_offset", "trampoline", "kind",
              "patchable", "reason", "crossing", "source"):
        out[k] = s.get(k)
    if out["crossing"] not in (None, *CROSSINGS):
        _bad(name, f"{where}.crossing is {out['crossing']!r}")
    src = out["source"]
    if src is not None and not (isinstance(src, dict) and isinstance(src.get("file"), str)
                                and _count(src.get("line"))):
        _bad(name, f"{where}.source is not {{file, line}}")
    for k in ("address", "length", "alignment"):
        out[k] = _opt_count(name, where, s, k)
    if out["length"] is not None and not 1 <= out["length"] <= 15:
        _bad(name, f"{where}.length is {out['length']}")
    if out["alignment"] == 0:
        _bad(name, f"{where}.alignment is 0")
    pre = s.get("prefixes", "")
    if not isinstance(pre, str) or len(pre) % 2 or any(c not in "0123456789abcdef"
                                                        for c in pre):
        _bad(name, f"{where}.prefixes is not hex")
    out["prefixes"] = pre
    inl = s.get("inlined")
    if inl is not None:
        if not isinstance(inl, list) or not all(isinstance(f, dict) for f in inl):
            _bad(name, f"{where}.inlined is not a list of frames")
        inl = [{"function": f.get("function") if isinstance(f.get("function"), str) else None,
                "file": f.get("file") if isinstance(f.get("file"), str) else None,
                "line": f.get("line") if _count(f.get("line")) else None} for f in inl]
    out["inlined"] = inl
    placement = s.get("placement")
    if placement is not None:
        try:        # shown as it is: it must be plain JSON (no NaN, not absurdly deep)
            json.dumps(placement, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            _bad(name, f"{where}.placement is not plain JSON")
    out["placement"] = placement
    state = s.get("baseline_state")
    if state not in (None, "new", "unchanged", "updated", "absent"):
        _bad(name, f"{where}.baseline_state is {state!r}")
    out["state"] = {"unchanged": "known", "updated": "known", "absent": "fixed"}.get(state, state)
    if out["state"] is None and isinstance(s.get("baselined"), bool):
        out["state"] = "known" if s["baselined"] else "new"   # reports before baseline_state
    out["compiler"] = s.get("compiler") if s.get("compiler") in COMPILERS else None
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
