"""The JSON documents: scan, verify, check and diff; their shipped schemas;
and ``load_report``, which reads a scan or check report back for ``diff`` and
``check --baseline``.  Every document carries ``schema_version`` (where a
schema ships) and the ``tool`` block, and is written by ``report.dump``."""
from __future__ import annotations

import json

from ..core import ObjectResult, Options, summarize
from ..core.remedy import remedy_json
from ..errors import InputError
from . import dump, esc, tool
from .jsonvalid import schema  # noqa: F401 (the shipped schemas, for users)

SCHEMA_VERSION = 1


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
    from .paths import base_dir
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
    from .paths import base_dir, relative_below
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
    fractions = []

    def fraction(text: str) -> float:
        fractions.append(text)
        return float(text)
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=fraction, parse_constant=_no_float)
        if fractions and len(fractions) != _layout_fractions(data):
            _no_float(fractions[0])
        return data
    except _Float as e:
        raise InputError(f"not a scall-objtool JSON report: {esc(str(e))}", shown) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not a JSON report: {esc(str(e)[:200])}", shown) from None
    except RecursionError:
        raise InputError("not a JSON report: nested too deeply", shown) from None
    except MemoryError:
        raise InputError("not a JSON report: too large to load", shown) from None


class _Float(ValueError):
    pass


def _layout_fractions(data) -> int:
    """How many fractions a report may hold: those of check's layout gate
    (``expected``, ``sigma``), the one place a fraction belongs."""
    layout = data.get("check", {}).get("layout") if isinstance(data, dict) and \
        isinstance(data.get("check"), dict) else None
    if not isinstance(layout, dict):
        return 0
    return sum(type(layout.get(k)) is float for k in ("expected", "sigma"))


def _no_float(text: str):
    """A report holds integers only (but for check's layout expectation): ``1.0``,
    ``1e3``, NaN and Infinity are refused while parsing (JSON Schema would take
    ``1.0`` for the integer 1)."""
    raise _Float(f"{text[:40]} is not an integer (a report holds no fraction, exponent, "
                 "NaN or Infinity)")


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
    the caller has checked it); object paths joined to ``object_root``.  The
    schema is the one structural check: a document that passes it has every
    field the sites are built from, of the right type."""
    from .findings import LintSite, Report
    if schema_name is not None:
        validate(data, schema_name, lambda why: _not_a_report(path, why))
    sites = [LintSite(object=path, section=s["section"],
                      offset=s["offset"], function=s["function"],
                      function_offset=s["function_offset"], trampoline=s["trampoline"],
                      key=s["key"], kind=s["kind"], patchable=s["patchable"],
                      reason=s["reason"], crossing=s["crossing"], source=s["source"],
                      inlined=s.get("inlined") or [], length=s.get("length"),
                      alignment=s.get("alignment"), placement=s.get("placement"),
                      compiler=s.get("compiler", obj.get("compiler")))
             for obj in data["objects"] if obj["sites"]
             for path in (_joined(object_root, obj["path"]),) for s in obj["sites"]]
    policy = data["policy"]
    return Report(path, policy, sites)


def _not_a_report(path: str, why: str):
    raise InputError(f"not a scall-objtool JSON report (scan --format json): {esc(why)}", path)


def validate(data, schema_name: str, bad, part: str | None = None) -> None:
    """``bad(why)`` unless ``data`` matches the shipped schema ``schema_name``
    (or its property ``part``)."""
    from .jsonvalid import Invalid, validate as check
    try:
        check(data, schema_name, part)
    except Invalid as e:
        bad(str(e))


def _joined(root: str | None, path):
    import os
    if root is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(root, path))
