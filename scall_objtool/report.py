"""Report stage: the JSON report (schema version 1) and the text report."""
from __future__ import annotations

import json
from importlib import resources

from . import __version__
from .model import ObjectResult, Options, summarize

SCHEMA_VERSION = 1


def schema() -> dict:
    """The JSON Schema of the report, as shipped in the package."""
    text = resources.files("scall_objtool").joinpath("schema/report-v1.json").read_text()
    return json.loads(text)


def to_json(results: list[ObjectResult], options: Options) -> dict:
    summary = summarize(results, per_object=True)
    summary = {"objects": len(results), **summary}
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "scall-objtool", "version": __version__},
        "policy": options.to_json(),
        "objects": [r.to_json() for r in results],
        "summary": summary,
    }


def render_json(results: list[ObjectResult], options: Options) -> str:
    return json.dumps(to_json(results, options), indent=2, ensure_ascii=True) + "\n"


def _loc(section: str, offset: int) -> str:
    return f"{section}+{offset:#x}"


def _func(name: str | None, off: int | None) -> str:
    return f"{name}+{off:#x}" if name is not None else "?"


def render_text(results: list[ObjectResult], options: Options) -> str:
    lines = []
    for r in results:
        s = r.summary()
        head = (f"{r.path}: {s['sites']} site{'s' if s['sites'] != 1 else ''} "
                f"({s['patchable']} patchable, {s['fallback']} fallback), "
                f"{s['references']} reference{'s' if s['references'] != 1 else ''}")
        if r.existing_table is not None:
            head += f"; has a table of {r.existing_table['entries']} entries"
        lines.append(head)
        for site in r.sites:
            verdict = "patchable" if site.patchable else f"fallback: {site.reason}"
            cross = site.crossing or "-"
            pre = f" [{site.prefixes.hex()}]" if site.prefixes else ""
            lines.append(f"  {_loc(site.section, site.offset):<22} "
                         f"{_func(site.function, site.function_offset):<32} "
                         f"{site.kind:<13} {site.trampoline}{pre}  len {site.length}  "
                         f"crossing {cross} (align {site.alignment})  {verdict}")
        for ref in r.references:
            lines.append(f"  {_loc(ref.section, ref.offset):<22} "
                         f"{_func(ref.function, ref.function_offset):<32} "
                         f"reference     {ref.symbol}  {ref.reloc_type}  {ref.kind}: "
                         f"{ref.detail}")
    t = summarize(results)
    lines.append(f"summary: {len(results)} object{'s' if len(results) != 1 else ''}, "
                 f"{t['sites']} sites, {t['patchable']} patchable, {t['fallback']} fallback, "
                 f"{t['references']} references (policy {options.policy})")
    return "\n".join(lines) + "\n"


def render_stats(results: list[ObjectResult]) -> str:
    """The ``--stats`` tables: sites per trampoline, kind, reason and object."""
    t = summarize(results, per_object=True)
    out: list[str] = []

    def table(title: str, head: tuple, rows: list[tuple]) -> None:
        if not rows:
            return
        cells = [tuple(str(c) for c in head)] + [tuple(str(c) for c in r) for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
        out.append(f"{title}:")
        for n, r in enumerate(cells):
            first = r[0].ljust(widths[0])
            rest = "  ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:]))
            out.append(f"  {first}  {rest}".rstrip())
            if n == 0:
                out.append("  " + "  ".join("-" * w for w in widths))

    table("by trampoline", ("trampoline", "sites", "patchable", "fallback"),
          [(k, v["sites"], v["patchable"], v["fallback"])
           for k, v in t["by_trampoline"].items()])
    table("by kind", ("kind", "sites"), list(t["by_kind"].items()))
    table("by reason", ("reason", "fallback"), list(t["by_reason"].items()))
    table("by object", ("object", "sites", "patchable", "fallback", "references"),
          [(o["path"], o["sites"], o["patchable"], o["fallback"], o["references"])
           for o in t["by_object"]])
    return "\n".join(out) + "\n" if out else ""
