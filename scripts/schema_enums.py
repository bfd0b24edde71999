#!/usr/bin/env python3
"""Write the shipped JSON schemas' enums from the tool's tables.

    python scripts/schema_enums.py          # rewrite the enums that differ
    python scripts/schema_enums.py --check  # list them, exit 1 if any

Every ``"enum"`` array in ``scall_objtool/schema/*.json`` that shares a word
with one of the vocabularies below is that vocabulary's (the one it shares
the largest part of its words with) and is rewritten to hold exactly its
words, in the table's order (``null`` kept last where the schema allows it).
Only the arrays that differ are touched, so the files keep their layout.
``tests/test_vocabulary.py`` runs the check.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scall_objtool.core import CROSSINGS  # noqa: E402
from scall_objtool.core.remedy import COMPILERS  # noqa: E402
from scall_objtool.options import PLACEMENTS, POLICIES  # noqa: E402
from scall_objtool.vocabulary import GATES, KINDS, LOADER_MODELS, REASONS  # noqa: E402

SCHEMAS = ROOT / "scall_objtool" / "schema"
#: the sets the schemas enumerate, by name
VOCABULARIES = {"KINDS": KINDS, "REASONS": REASONS, "LOADER_MODELS": LOADER_MODELS,
                "PLACEMENTS": PLACEMENTS, "POLICIES": POLICIES, "CROSSINGS": CROSSINGS,
                "COMPILERS": COMPILERS, "GATES": GATES}
_KEY = '"enum"'


def enums(text: str):
    """(start, end, values) of each ``"enum"`` array in a schema's text."""
    decoder = json.JSONDecoder()
    at = text.find(_KEY)
    while at >= 0:
        i = at + len(_KEY)
        while text[i] in " \t\r\n:":
            i += 1
        values, end = decoder.raw_decode(text, i)
        if isinstance(values, list):
            yield i, end, values
        at = text.find(_KEY, end)


def vocabulary_of(values: list) -> str | None:
    """The vocabulary an enum belongs to: the one sharing the largest part of
    their joint words (None: it shares none with any)."""
    words = {v for v in values if v is not None}
    best, score = None, 0.0
    for name, vocab in VOCABULARIES.items():
        joint = len(words | set(vocab))
        share = len(words & set(vocab)) / joint if joint else 0.0
        if share > score:
            best, score = name, share
    return best


def sync(text: str) -> tuple[str, list[str], set[str]]:
    """(the text with every enum holding its vocabulary's words, what changed,
    the vocabularies found)."""
    out, changes, found, last = [], [], set(), 0
    for start, end, values in enums(text):
        name = vocabulary_of(values)
        if name is None:
            continue
        found.add(name)
        want = list(VOCABULARIES[name]) + ([None] if None in values else [])
        if values != want:
            line = text.count("\n", 0, start) + 1
            changes.append(f"line {line}: {name}: {values} -> {want}")
            out += [text[last:start], json.dumps(want)]
            last = end
    out.append(text[last:])
    return "".join(out), changes, found


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        sys.stderr.write("usage: schema_enums.py [--check]\n")
        return 2
    changed = False
    for path in sorted(SCHEMAS.glob("*.json")):
        text = path.read_text()
        new, changes, _ = sync(text)
        for c in changes:
            print(f"{path.relative_to(ROOT)}: {c}")
        if changes:
            changed = True
            if not check:
                json.loads(new)                 # still a JSON document
                path.write_text(new)
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
