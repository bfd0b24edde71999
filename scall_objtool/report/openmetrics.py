"""Counts of a report in the OpenMetrics text format, for Prometheus.

Meant for node_exporter's textfile collector (write the output to
``<dir>/scall_objtool.prom`` atomically) or any scraper that reads the
OpenMetrics / Prometheus text exposition format.  Every family is a gauge
(the counts of one report, not counters), so the output parses both as
OpenMetrics 1.0 and as the Prometheus 0.0.4 text format (where the closing
``# EOF`` is a comment).

Families (object directories are relative to the report's common directory,
as in the dashboard; see :mod:`scall_objtool.report.readback`):

* ``scall_objtool_sites{dir,trampoline,kind,reason,verdict}`` -- the sites of
  each combination (``reason="none"`` for patchable sites).  A ``check``
  report lists only the fallback sites, so from it this family has only
  ``verdict="fallback"``; every other family is complete for both.
* ``scall_objtool_dir_sites{dir,verdict}``, ``scall_objtool_trampoline_sites
  {trampoline,verdict}``, ``scall_objtool_kind_sites{kind}``,
  ``scall_objtool_reason_sites{reason}`` (fallback) -- the summary's breakdowns.
* ``scall_objtool_objects``, ``scall_objtool_references``,
  ``scall_objtool_verdict_sites{verdict}``, ``scall_objtool_patchable_ratio``
  -- totals; ``scall_objtool_report{version,policy,...} 1`` -- what made them.
* from a check report also ``scall_objtool_check_passed``,
  ``scall_objtool_check_failing`` and ``scall_objtool_check_baselined``.

Samples are sorted by their labels, so the output is deterministic.
"""
from __future__ import annotations

from collections import Counter

from .readback import Doc, read

PREFIX = "scall_objtool_"


def escape_label(value: str) -> str:
    """A label value as the text formats quote it: ``\\``, ``"`` and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


class _Writer:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, help_text: str, samples) -> None:
        """One gauge family; samples: [(labels tuple of (key, value)), value]."""
        full = PREFIX + name
        self.lines.append(f"# TYPE {full} gauge")
        self.lines.append(f"# HELP {full} {_escape_help(help_text)}")
        for labels, value in sorted(samples, key=lambda s: s[0]):
            if labels:
                inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
                self.lines.append(f"{full}{{{inner}}} {_number(value)}")
            else:
                self.lines.append(f"{full} {_number(value)}")


def _verdicts(counts: dict) -> list[tuple[str, int]]:
    return [("patchable", counts["patchable"]), ("fallback", counts["fallback"])]


def render_doc(doc: Doc) -> str:
    w = _Writer()
    s = doc.summary
    pol = doc.policy

    def opt(v) -> str:
        return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    w.family("report", "The report these counts come from: tool version and policy.", [(
        (("version", doc.version), ("report", doc.kind), ("policy", opt(pol.get("name"))),
         ("allow_tail", opt(pol.get("allow_tail"))), ("cache_line", opt(pol.get("cache_line"))),
         ("assume_align", opt(pol.get("assume_align"))), ("module", opt(pol.get("module")))),
        1)])
    w.family("objects", "Objects scanned.", [((), s["objects"])])
    w.family("references", "Relocations to a trampoline that are not static-call sites.",
             [((), s["references"])])
    w.family("verdict_sites", "Static-call sites by verdict under the report's policy.",
             [((("verdict", v),), n) for v, n in _verdicts(s)])
    w.family("patchable_ratio", "Share of the sites that are patchable (1 when there are none).",
             [((), s["patchable"] / s["sites"] if s["sites"] else 1.0)])

    joint: Counter = Counter()
    for site in doc.sites:
        joint[(("dir", doc.directory(site["object"])), ("trampoline", site["trampoline"]),
               ("kind", site["kind"]), ("reason", site["reason"] or "none"),
               ("verdict", "patchable" if site["patchable"] else "fallback"))] += 1
    w.family("sites", "Static-call sites by object directory, trampoline, kind, fallback "
             "reason and verdict" + (" (a check report lists only the fallback sites)."
                                     if doc.kind == "check" else "."), list(joint.items()))

    dirs: dict[str, Counter] = {}
    for o in doc.objects:
        c = dirs.setdefault(doc.directory(o["path"]), Counter())
        c["patchable"] += o["patchable"]
        c["fallback"] += o["fallback"]
    w.family("dir_sites", "Static-call sites per object directory and verdict.",
             [((("dir", d), ("verdict", v)), n) for d, c in dirs.items()
              for v, n in _verdicts(c)])
    w.family("trampoline_sites", "Static-call sites per trampoline and verdict.",
             [((("trampoline", t), ("verdict", v)), n)
              for t, c in s["by_trampoline"].items() for v, n in _verdicts(c)])
    w.family("kind_sites", "Static-call sites per instruction kind.",
             [((("kind", k),), n) for k, n in s["by_kind"].items()])
    w.family("reason_sites", "Fallback static-call sites per reason.",
             [((("reason", r),), n) for r, n in s["by_reason"].items()])
    if doc.check is not None:
        c = doc.check
        w.family("check_passed", "1 when the check passed.", [((), bool(c["passed"]))])
        w.family("check_failing", "Fallback sites that count against the check.",
                 [((), c["failing"])])
        w.family("check_baselined", "Fallback sites covered by the baseline.",
                 [((), c["baselined"])])
    w.lines.append("# EOF")
    return "\n".join(w.lines) + "\n"


def render_openmetrics(report: dict, name: str = "report", checked: bool = False) -> str:
    """The OpenMetrics text of a parsed ``scan``/``check --format json`` document.
    InputError (path = ``name``) when the document is malformed (``checked``: the
    caller made it, and it is not checked again)."""
    return render_doc(read(report, name, checked=checked))
