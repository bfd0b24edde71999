"""Paths as reports show them: relative to a base directory when below it.

Apart from ``findings`` (which imports dataclasses and re): a scan's JSON
report shows its sites' source files relative to the current directory, and
needs nothing else of the lint's machinery."""
from __future__ import annotations

import os
from functools import lru_cache


def base_dir(root: str | None = None) -> str | None:
    """The absolute directory that paths are shown relative to: ``root``, else
    the current directory; None when it cannot be known (the current directory
    was deleted, and ``root`` is relative or not given): paths stay as they are."""
    try:        # getcwd is absolute and normalized already (and ~4x quicker per site)
        return os.path.abspath(root) if root else os.getcwd()
    except OSError:
        return None


@lru_cache(maxsize=1 << 16)
def relative_below(path: str, base: str | None) -> str:
    """``path`` normalized, and relative to ``base`` when it is absolute and lies
    below it (cached: matching asks for the same few paths once per site)."""
    p = os.path.normpath(path)
    if os.path.isabs(p) and base is not None:
        try:
            rel = os.path.relpath(p, base)
        except ValueError:
            return p
        if rel != ".." and not rel.startswith(".." + os.sep):
            return rel
    return p
