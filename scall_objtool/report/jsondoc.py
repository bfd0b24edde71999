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
    from ..findings import base_dir
    if output is None or output == "-" or not _regular_or_new(output):
        return None
    cwd = base_dir()
    if cwd is None:             # the current directory is gone: the paths are absolute
        return None
    rel = os.path.relpath(cwd, os.path.dirname(os.path.join(cwd, output)))
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
    from ..findings import base_dir, relative_below
    base = base_dir(root)
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
        "check": {"passed": res.passed and not errors, "status": res.status,
                  "findings": len(res.findings),
                  "failing": res.failing, "max_fallback": res.max_fallback,
                  "baseline": res.baseline, "baselined": res.baselined, "new": res.new,
                  "fixed": len(res.gone), "errors": errors,
                  **({"layout": res.layout.to_json()} if res.layout else {})},
        "findings": _relative_sources([finding_json(f, options.cache_line)
                                       for f in res.findings], source_root),
        "fixed": _relative_sources([{**s.to_json(), "baseline_state": "absent"}
                                    for s in res.gone], source_root),
        "summary": summary,
    }


def finding_json(f, line: int = 64) -> dict:
    """A finding of check's JSON: the site, its stable identity, its state
    against the baseline (null without one), its gate, whether it fails, the
    object's compiler and the remedy for a ``line``-byte cache line."""
    obj, func, tramp, kind, ordinal = f.stable_id
    return {**f.site.to_json(), "baselined": f.baselined, "baseline_state": f.state,
            "gate": f.gate, "fails": f.fails, "compiler": f.site.compiler,
            "remedy": remedy_json(f.site.reason, f.site.compiler, line, f.site.kind),
            "id": {"object": obj, "function": func, "trampoline": tramp, "kind": kind,
                   "ordinal": ordinal}}


def _shown(site) -> dict:
    """A site of diff's JSON, its object path normalized (no ``/./``)."""
    import os
    return {**site.to_json(), "object": os.path.normpath(site.object)}


def diff_json(d, old: str, new: str) -> str:
    return dump({
        "tool": tool(),
        "old": old, "new": new,
        "added": [_shown(s) for s in d.added],
        "removed": [_shown(s) for s in d.removed],
        "changed": [{"old": _shown(o), "new": _shown(n)} for o, n in d.changed],
        "summary": {"added": len(d.added), "removed": len(d.removed),
                    "changed": len(d.changed), "unchanged": len(d.unchanged),
                    "moved": d.moved, "new_fallback": len(d.new_fallback)},
    })


# ------------------------------------------------------------------- reading
#: the largest JSON report read (a scan of every 6.1 module is ~9 MB)
MAX_JSON = 256 << 20


def read_json(path: str):
    """A JSON file, parsed; InputError (naming the path, escaped) when it cannot be
    read or parsed.  It must be a regular file of at most MAX_JSON bytes, or a
    pipe (``<(...)``, ``/dev/stdin`` from a pipe) of which at most MAX_JSON + 1
    bytes are read; a device (``/dev/zero``) or a directory is refused unread."""
    import os
    import stat

    from ..inputs import show
    shown = show(path)
    def kind(st) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise InputError("cannot read: Is a directory", shown)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise InputError("not a regular file or a pipe: refused unread", shown)
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_JSON:
            raise InputError(f"larger than {MAX_JSON} bytes: refused unread", shown)
    try:
        kind(os.stat(path))             # a device is never opened
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise InputError("cannot open: No such file or directory", shown) from None
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror}", shown) from None
    except ValueError:
        raise InputError("cannot open: invalid path", shown) from None
    try:
        kind(os.fstat(fd))              # what was opened, if it changed meanwhile
        raw = _read_bounded(fd, MAX_JSON + 1)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", shown) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_JSON:
        raise InputError(f"larger than {MAX_JSON} bytes: refused", shown)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not a JSON report: {esc(str(e)[:200])}", shown) from None
    except RecursionError:
        raise InputError("not a JSON report: nested too deeply", shown) from None
    except MemoryError:
        raise InputError("not a JSON report: too large to load", shown) from None


def _read_bounded(fd: int, limit: int) -> bytearray:
    """At most ``limit`` bytes from ``fd`` (to its end, or ``limit``)."""
    import os
    buf = bytearray()
    while len(buf) < limit:
        chunk = os.read(fd, min(1 << 20, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


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
                    length=_opt(s.get("length"), int), alignment=_opt(s.get("alignment"), int),
                    placement=s.get("placement") if isinstance(s.get("placement"), dict)
                    else None,
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
    return os.path.normpath(os.path.join(root, path))


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
