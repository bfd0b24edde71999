"""Rendering: every report the tool prints or writes.

One module a format: ``text`` (what a person reads: scan, stats, verify,
check, diff, write), ``jsondoc`` (the JSON documents of scan, verify, check
and diff, their shipped schemas, and ``load_report`` which reads a report
back), ``sarif`` (check for code-scanning viewers).  What the formats share
is here: the tool block, the one JSON writer, and the wording of a verdict.
"""
from __future__ import annotations


def tool() -> dict:
    """The ``tool`` block every JSON document carries."""
    from .._version import __version__
    return {"name": "scall-objtool", "version": __version__}


def dump(doc: dict) -> str:
    """The one JSON writer: indented, ASCII only (names are escaped), a final
    newline; ``json.dumps``'s output, written faster (``jsonout``)."""
    from .jsonout import dumps
    return dumps(doc) + "\n"


def verdict(patchable: bool, reason: str | None) -> str:
    """``patchable`` or ``fallback: REASON``."""
    return "patchable" if patchable else f"fallback: {reason}"


def esc(text: str) -> str:
    """Text from a report, safe for a terminal or a log: control characters,
    bidi overrides, newlines and lone surrogates escaped (as ``scan`` does)."""
    if text.isprintable():
        return text
    from ..core.elf import printable
    return printable(text.encode("utf-8", "surrogatepass"))


def plural(n: int, word: str) -> str:
    """``1 entry``, ``2 entries``, ``0 sites``."""
    if n == 1:
        return f"{n} {word}"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return f"{n} {word[:-1]}ies"
    return f"{n} {word}s"
