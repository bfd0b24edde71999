"""SARIF 2.1.0 output of ``check`` (for GitHub code scanning and other viewers).

One rule per fallback reason (each of ``vocabulary.REASONS``, in its order),
one result per finding.  A result's physical location is the source file and
line from DWARF when known (a path relative to the source root, ``uriBaseId``
``%SRCROOT%``), else the object file; its logical location is the function
and offset.  ``partialFingerprints`` hash the site's stable identity, the
one the baseline matches on (object, function, trampoline, kind, ordinal), so
an alert survives unrelated edits and a site that only moved stays the same
alert.  With a baseline, ``baselineState`` says whether a finding is ``new``,
``unchanged`` or ``updated`` (fallback there for another reason), and the
baseline's findings that are gone are listed as ``absent``; each result's
properties say its gate (structural or layout) and whether it fails the check.
Output is deterministic.
"""
from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import quote

from ..core import location
from ..core.remedy import remedy
from ..vocabulary import KIND_TABLE, REASON_TABLE, REASONS
from . import dump, tool
from .findings import CheckResult, Finding
from .paths import base_dir
from .text import display_path

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT = "scallObjtoolSite/v2"
_OPTION = re.compile(r"(?<![\w`])(--?[A-Za-z][\w,=+.-]*[\w=])")

RULE_IDS = REASONS          # one rule per reason (vocabulary.REASON_TABLE), in its order


def _help(rid: str, line: int) -> dict:
    """A rule's help: its remedy (remedy.py), for either compiler; each result
    carries the remedy for its own object's compiler (message and properties).
    Not a SARIF ``fix``: a fix must be a concrete edit of an artifact, and the
    remedy is a build flag whose place (a Makefile, CFLAGS) the tool cannot know."""
    text = remedy(rid, None, line).text
    md = _OPTION.sub(r"`\1`", text)          # flags and options as code
    return {"text": f"Remedy: {text}.", "markdown": f"**Remedy:** {md}."}


def _rules(line: int = 64) -> list[dict]:
    out = []
    for r in REASON_TABLE.values():
        out.append({
            "id": r.name,
            "name": r.rule,
            "shortDescription": {"text": r.short},
            "fullDescription": {"text": r.full},
            "help": _help(r.name, line),
            "defaultConfiguration": {"level": "warning"},
            "properties": {"tags": ["static-call", "performance"], "precision": "very-high",
                           "problem.severity": "warning"},
        })
    return out


def _kind_text(kind: str) -> str:
    spec = KIND_TABLE.get(kind)
    return kind if spec is None else spec.text


def _quote(path: str) -> str:
    """A path in a URI: its bytes percent-encoded (RFC 3986, as SARIF requires),
    so that a file name that is not UTF-8 still names the file."""
    return quote(os.fsencode(path.replace(os.sep, "/")))


def _uri(path: str, root: str | None) -> tuple[str, str | None]:
    """(uri, uriBaseId) of a file: relative to %SRCROOT% below the root (no
    root: the current directory is gone, and the path stays as it is)."""
    shown = display_path(path, root)
    if os.path.isabs(shown):
        return "file://" + _quote(shown), None
    return _quote(shown), "%SRCROOT%" if root is not None else None


def _artifact(path: str, root: str | None) -> dict:
    uri, base = _uri(path, root)
    loc = {"uri": uri}
    if base:
        loc["uriBaseId"] = base
    return loc


def _fingerprint(stable_id: tuple) -> str:
    h = hashlib.sha256()
    for part in stable_id:
        h.update(str(part).encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def _inline_chain(inlined: list, root: str) -> list[dict]:
    """The inline chain of a site as relatedLocations, innermost frame first:
    where the static call is written (a header's inline wrapper) and each
    inlined call on the way out to the caller (the primary location)."""
    out = []
    for i, f in enumerate(inlined):
        if not f.get("file"):
            continue
        phys: dict = {"artifactLocation": _artifact(f["file"], root)}
        if f.get("line"):
            phys["region"] = {"startLine": int(f["line"])}
        what = f"in inlined {f['function']}" if f.get("function") else "in inlined code"
        out.append({"id": i + 1, "physicalLocation": phys,
                    "message": {"text": f"{what} (inline level {i + 1} of {len(inlined)})"}})
    return out


def to_sarif(res: CheckResult, options, summary: dict, errors: list[str],
             root: str | None = None, files: dict | None = None) -> dict:
    """The SARIF document; ``files`` maps an object's name in the report to
    its path on disk where they differ (a file name that is not UTF-8, shown
    escaped), so that its URI names the file."""
    root = base_dir(root)
    files = files or {}
    results = []
    absent = [Finding(s, "absent", i) for s, i in zip(res.gone, res.gone_ordinals)]
    for f in res.findings + absent:
        s = f.site
        if s.source and s.source.get("file"):
            # the caller after inlining (addr2line -i's outermost frame)
            phys = {"artifactLocation": _artifact(s.source["file"], root)}
            if s.source.get("line"):
                phys["region"] = {"startLine": int(s.source["line"])}
        else:
            phys = {"artifactLocation": _artifact(files.get(s.object, s.object), root),
                    "region": {"startLine": 1}}
        logical = {"name": s.function if s.function is not None else s.section,
                   "fullyQualifiedName": f"{s.object}:{s.where}",
                   "kind": "function" if s.function is not None else "module"}
        fix = s.remedy(options.cache_line)
        text = (f"{s.message} ({_kind_text(s.kind)} at {s.where}, "
                f"{location(s.section, s.offset)} in {s.object}). Remedy: {fix.text}.")
        result = {
            "ruleId": s.reason,
            "ruleIndex": RULE_IDS.index(s.reason),
            "level": "warning",
            "message": {"text": text},
            "locations": [{"physicalLocation": phys, "logicalLocations": [logical]}],
            "partialFingerprints": {FINGERPRINT: _fingerprint(f.stable_id)},
            "properties": {"object": s.object, "section": s.section, "offset": s.offset,
                           "trampoline": s.trampoline, "key": s.key, "kind": s.kind,
                           "crossing": s.crossing, "gate": f.gate, "fails": f.fails,
                           "compiler": s.compiler, "remedy": fix.to_json()},
        }
        if f.state == "absent":
            result["kind"] = "pass"         # gone: SARIF's kind for a result that no longer fails
            result["level"] = "none"
        related = _inline_chain(s.inlined, root)
        if related:
            result["relatedLocations"] = related
        if res.baseline is not None:
            result["baselineState"] = f.state
        results.append(result)
    invocation: dict = {"executionSuccessful": not errors}
    if errors:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": e}} for e in errors]
    block = tool()
    run = {
        "tool": {"driver": {**block, "semanticVersion": block["version"],
                            "rules": _rules(options.cache_line)}},
        "invocations": [invocation],
        "results": results,
        "columnKind": "utf16CodeUnits",
        "properties": {"policy": options.to_json(), "summary": summary,
                       "check": {"passed": res.passed and not errors, "status": res.status,
                                 "failing": res.failing, "max_fallback": res.max_fallback,
                                 "baseline": res.baseline,
                                 **({"layout": res.layout.to_json()} if res.layout else {})}},
    }
    if root is not None:
        run = {"tool": run.pop("tool"),
               "originalUriBaseIds": {"%SRCROOT%": {"uri": "file://" + _quote(
                   root.rstrip("/") + "/")}},
               **run}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def sarif_json(res: CheckResult, options, summary: dict, errors: list[str],
               root: str | None = None, files: dict | None = None) -> str:
    return dump(to_sarif(res, options, summary, errors, root, files))
