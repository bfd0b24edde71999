"""scall-objtool: find, prove, classify and record static-call sites in x86-64
ELF objects, in the spirit of the Linux kernel's ``objtool --static-call``.

The library follows the data: ``core.elf`` (read) -> ``core.candidates`` (find) ->
``core.decode`` (prove) -> ``core.classify`` (policy) -> ``table`` / ``report``.
"""
from __future__ import annotations

TYPE_CHECKING = False            # typing's own costs an import
if TYPE_CHECKING:
    from .core import ObjectResult
    from .options import Options

#: the classes the package exports (and the version, read by --version and the
#: reports), by the module that defines them: imported
#: when first asked for (``from scall_objtool import Options``), so that the
#: command line, which imports the package first, pays only for what it uses
_EXPORTED = {"InputError": "errors", "ScallError": "errors", "UsageError": "errors",
             "ObjectResult": "core", "Options": "options", "Reference": "core",
             "Site": "core", "__version__": "_version"}


def __getattr__(name: str):
    module = _EXPORTED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTED))


def scan_path(path: str, options: Options | None = None,
              candidates_from: str | None = None) -> ObjectResult:
    """Scan one object file (or linked image) and return its sites and references
    (``candidates_from``: ``options.candidates`` unless given)."""
    from .core.pipeline import scan_path as _scan
    return _scan(path, options, candidates_from)


def verify_path(path: str, options: Options | None = None):
    """Check the existing static-call table of an object or linked image;
    returns a :class:`table.Verdict` (``.ok``, ``.mismatches``, ``.missing``)."""
    from .core.elf import open_elf
    from .options import Options
    from .core.pipeline import scan_elf
    from .table.verify import verify
    options = options or Options()
    elf = open_elf(path)
    return verify(elf, scan_elf(elf, options, sources=False), options)


def write_path(path: str, options: Options | None = None, **kwargs):
    """Write the static-call table of one object; see :func:`write.write_path`."""
    from .options import Options
    from .table.write import write_path as _write
    return _write(path, options or Options(), **kwargs)


__all__ = ["InputError", "ObjectResult", "Options", "Reference", "ScallError", "Site",
           "UsageError", "scan_path", "verify_path", "write_path", "__version__"]
