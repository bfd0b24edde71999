"""The C runtime for user-space inline static calls, shipped with the tool.

`path()` is the directory holding `static_call.h`, `static_call.c` and the
linker-script fragment `static_call_sites.ld`; a C project compiles them
from there (`-I"$(scall-objtool runtime-path)"`).  See docs/runtime.md.
"""
from __future__ import annotations

from pathlib import Path

FILES = ("static_call.h", "static_call.c", "static_call_sites.ld")


def path() -> Path:
    """The directory of the runtime's C sources (inside the installed package)."""
    return Path(__file__).resolve().parent
