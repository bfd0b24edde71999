"""The JSON documents: scan, verify, check and diff; their shipped schemas;
and ``load_report``, which reads a scan or check report back for ``diff`` and
``check --baseline``.  Every document carries ``schema_version`` (where a
schema ships) and the ``tool`` block, and is written by ``report.dump``."""
from __future__ import annotations

import json

from ..errors import InputError
from ..findings import LintSite, Report
from ..model import KINDS, REASONS, ObjectResult, Options, summarize
from ..remedy import COMPILERS, remedy_json
from . import dump, esc, tool

SCHEMA_VERSION = 1


def schema(name: str = "report") -> dict:
    """A JSON Schema shipped in the package: ``report`` (scan), ``check`` or ``verify``."""
    from importlib import resources
    text = resources.files("scall_objtool").joinpath(f"schema/{name}-v1.json").read_text()
    return json.loads(text)


# ------------------------------------------------------------------- writing
def _skipped(summary: dict, skipped: dict | None) -> dict:
    """``summary`` with the walk's skipped counts, when there were any."""
    return {**summary, "skipped": skipped} if skipped else summary


def scan_doc(results: list[ObjectResult], options: Options,
             skipped: dict | None = None, paths_base: str | None = None,
             source_root: str | None = None) -> dict:
    """The scan report.  ``paths_base``: the directory object paths are relative
    to, from the report file's directory (see ``paths_base``); source files are
    shown relative to ``source_root`` (default: the current directory) when
    below it."""
    doc: dict = {"schema_version": SCHEMA_VERSION}
    if paths_base is not None:
        doc["paths_relative_to"] = paths_base
    objects = [r.to_json() for r in results]
    for obj in objects:
        _relative_sources(obj["sites"], source_root)
        for site in obj["sites"]:
            site["remedy"] = remedy_json(site["reason"], obj["compiler"], options.cache_line,
                                         site["kind"])
    return {**doc,
            "tool": tool(),
            "policy": options.to_json(),
            "objects": objects,
            "summary": _skipped({"objects": len(results),
                                 **summarize(results, per_object=True)}, skipped)}


def scan_json(results: list[ObjectResult], options: Options,
              skipped: dict | None = None, paths_base: str | None = None,
              source_root: str | None = None) -> str:
    return dump(scan_doc(results, options, skipped, paths_base, source_root))


def paths_base(output: str | None) -> str | None:
    """For a report written to the file ``output``: the current directory, which
    the object paths are relative to, as seen from the file's directory."""
    import os
    if output is None or output == "-" or not _regular_or_new(output):
        return None
    rel = os.path.relpath(os.getcwd(), os.path.dirname(os.path.abspath(output)))
    return rel.replace(os.sep, "/")


def _regular_or_new(path: str) -> bool:
    import os
    import stat
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def _relative_sources(sites: list[dict], root: str | None) -> list[dict]:
    """Source files of the sites (and their inline chains) relative to ``root``
    when below it: a report records no machine's absolute paths."""
    import os

    from ..findings import relative_below
    base = os.path.abspath(root or os.curdir)
    for site in sites:
        for frame in [site.get("source")] + list(site.get("inlined") or ()):
            if frame and isinstance(frame.get("file"), str):
                frame["file"] = relative_below(frame["file"], base)
    return sites


def verify_json(verdicts, options: Options, skipped: dict | None = None) -> str:
    return dump({
        "schema_version": SCHEMA_VERSION,
        "tool": tool(),
        "policy": options.to_json(),
        "objects": [v.to_json() for v in verdicts],
        "summary": _skipped({"objects": len(verdicts),
                             "entries": sum(v.entries for v in verdicts),
                             "failed": sum(not v.ok for v in verdicts),
                             "policy_findings": sum(bool(v.policy_findings)
                                                    for v in verdicts)}, skipped),
    })


def check_doc(res, summary: dict, options: Options, errors: list[str],
              source_root: str | None = None) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": tool(),
        "policy": options.to_json(),
        "check": {"passed": res.passed and not errors, "findings": len(res.findings),
                  "failing": res.failing, "max_fallback": res.max_fallback,
                  "baseline": res.baseline, "baselined": res.baselined,
                  "fixed": len(res.gone), "errors": errors},
        "findings": _relative_sources([{**f.site.to_json(), "baselined": f.baselined,
                                        "compiler": f.site.compiler,
                                        "remedy": remedy_json(f.site.reason, f.site.compiler,
                                                              options.cache_line, f.site.kind)}
                                       for f in res.findings], source_root),
        "summary": summary,
    }


def diff_json(d, old: str, new: str) -> str:
    return dump({
        "tool": tool(),
        "old": old, "new": new,
        "added": [s.to_json() for s in d.added],
        "removed": [s.to_json() for s in d.removed],
        "changed": [{"old": o.to_json(), "new": n.to_json()} for o, n in d.changed],
        "summary": {"added": len(d.added), "removed": len(d.removed),
                    "changed": len(d.changed), "unchanged": len(d.unchanged),
                    "moved": d.moved, "new_fallback": len(d.new_fallback)},
    })


# ------------------------------------------------------------------- reading
def read_json(path: str):
    """A JSON file, parsed; InputError (naming the path, escaped) when it cannot be
    read or parsed."""
    from ..inputs import show
    shown = show(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError("cannot open: No such file or directory", shown) from None
    except IsADirectoryError:
        raise InputError("cannot read: Is a directory", shown) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", shown) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not a JSON report: {esc(str(e)[:200])}", shown) from None
    except RecursionError:
        raise InputError("not a JSON report: nested too deeply", shown) from None
    except MemoryError:
        raise InputError("not a JSON report: too large to load", shown) from None


def load_report(path: str):
    """Read a schema-1 JSON report; InputError for anything else.  Object paths
    recorded relative to another directory (``paths_relative_to``) are joined to
    it, so that they match from wherever the report is used."""
    import os

    from ..inputs import show
    data = read_json(path)
    base = data.get("paths_relative_to") if isinstance(data, dict) else None
    root = (os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), base))
            if isinstance(base, str) else None)
    return report_from_json(data, show(path), root)


def report_from_json(data, path: str, object_root: str | None = None,
                     schema_name: str | None = "report-v1.json"):
    """A report (parsed JSON) read back, checked against ``schema_name`` (None:
    the caller has checked it); object paths joined to ``object_root``."""
    def bad(why: str):
        raise InputError(f"not a scall-objtool JSON report (scan --format json): {esc(why)}",
                         path)

    if schema_name is not None:
        validate(data, schema_name, bad)
    objects = data.get("objects")
    if not isinstance(objects, list):
        bad("no 'objects' list")
    policy = data.get("policy") if isinstance(data.get("policy"), dict) else {}
    sites = []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("path"), str) \
                or not isinstance(obj.get("sites"), list):
            bad(f"objects[{i}] has no 'path' and 'sites'")
        for j, s in enumerate(obj["sites"]):
            where = f"objects[{i}].sites[{j}]"
            if not isinstance(s, dict):
                bad(f"{where} is not an object")
            try:
                site = LintSite(
                    object=_joined(object_root, obj["path"]), section=_str(s["section"]), offset=_int(s["offset"]),
                    function=_opt(s.get("function"), str),
                    function_offset=_opt(s.get("function_offset"), int),
                    trampoline=_str(s["trampoline"]), key=_str(s.get("key", "")),
                    kind=_enum(s["kind"], KINDS), patchable=_bool(s["patchable"]),
                    reason=_opt_enum(s.get("reason"), REASONS),
                    crossing=_opt(s.get("crossing"), str),
                    source=s.get("source") if isinstance(s.get("source"), dict) else None,
                    inlined=s.get("inlined") if isinstance(s.get("inlined"), list) else [],
                    compiler=_opt_enum(s.get("compiler", obj.get("compiler")), COMPILERS))
            except (KeyError, TypeError, ValueError) as e:
                bad(f"{where}: {e.args[0] if e.args else e}")
            if site.patchable == (site.reason is not None):
                bad(f"{where}: 'patchable' and 'reason' disagree")
            sites.append(site)
    return Report(path, policy, sites)


def validate(data, schema_name: str, bad) -> None:
    """``bad(why)`` unless ``data`` matches the shipped schema ``schema_name``."""
    from .jsonvalid import Invalid, shipped
    try:
        shipped(schema_name).validate(data)
    except Invalid as e:
        bad(str(e))
    except RecursionError:
        bad("nested too deeply")


def _joined(root: str | None, path):
    import os
    if root is None or os.path.isabs(path):
        return path
    return os.path.join(root, path)


def _str(v):
    if not isinstance(v, str):
        raise TypeError(f"expected a string, not {v!r}")
    return v


def _int(v):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise TypeError(f"expected a non-negative integer, not {v!r}")
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise TypeError(f"expected true or false, not {v!r}")
    return v


def _opt(v, typ):
    if v is None:
        return None
    if typ is int:
        return _int(v)
    return _str(v)


def _enum(v, allowed):
    if v not in allowed:
        raise ValueError(f"unknown value {v!r}")
    return v


def _opt_enum(v, allowed):
    return None if v is None else _enum(v, allowed)
