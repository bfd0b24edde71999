"""Compressed kernel modules: ``.ko.xz``, ``.ko.zst`` and ``.ko.gz``.

Distributions ship modules compressed (Debian 6.12: xz).  ``scan``, ``check``
and ``verify`` read them transparently, recognised by their magic bytes (not
their name); ``write`` refuses them, since a compressed module is a packaged
artifact.  Decompression streams into a bounded buffer: an input that would
expand past ``MAX_EXPANDED`` (or past ``RATIO`` times its own size plus a
margin) is refused, so a small hostile file never costs gigabytes.  The
codecs are imported only for a compressed input.
"""
from __future__ import annotations

from .errors import InputError

#: name -> magic bytes at the start of the file
MAGICS = {"xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd", "gzip": b"\x1f\x8b"}
#: the largest expanded size accepted (the biggest 6.1 module is ~30 MB)
MAX_EXPANDED = 1 << 30
#: and at most this many times the compressed size, plus 64 MiB
RATIO = 64
_CHUNK = 1 << 20


def compression(data: bytes) -> str | None:
    """``xz``, ``zstd`` or ``gzip`` for compressed data, else None."""
    for name, magic in MAGICS.items():
        if data.startswith(magic):
            return name
    return None


def _streams(name: str):
    """(decompress(chunk, max_length) -> bytes, finished() -> bool) of a codec;
    ``max_length`` bounds the output where the codec can (lzma, zlib); the
    output is cut short only past the caller's bound, which is then refused."""
    if name == "xz":
        import lzma
        d = lzma.LZMADecompressor()
        return d.decompress, lambda: d.eof
    if name == "gzip":
        import zlib
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)

        # output is cut at max_length only past the bound, which is then refused
        return z.decompress, lambda: z.eof
    try:
        import zstandard
    except ImportError:
        raise InputError("zstd-compressed, and the zstandard package is not installed "
                         "(pip install zstandard)") from None
    zd = zstandard.ZstdDecompressor().decompressobj()
    return (lambda chunk, max_length: zd.decompress(chunk)), lambda: zd.eof


def decompress(data: bytes, path: str | None = None) -> bytes:
    """The expanded bytes of compressed ``data`` (``data`` itself when it is not
    compressed); InputError when corrupt, truncated, or larger than allowed."""
    name = compression(data)
    if name is None:
        return data
    limit = min(MAX_EXPANDED, RATIO * len(data) + (64 << 20))
    # zstd's decompressobj takes no output bound: it gets small input slices,
    # each of which expands by a bounded amount (blocks are at most 128 KiB)
    step = 512 if name == "zstd" else _CHUNK
    out = bytearray()
    try:
        inflate, finished = _streams(name)
        for pos in range(0, len(data), step):
            out += inflate(data[pos:pos + step], limit + 1 - len(out))
            if len(out) > limit:
                raise InputError(f"{name}-compressed, and expands to more than {limit} "
                                 "bytes: refused", path)
            if finished():
                break
        if not finished():
            raise InputError(f"{name}-compressed, and truncated", path)
    except InputError as e:
        e.path = e.path or path
        raise
    except MemoryError:
        raise InputError(f"{name}-compressed, and too large to expand", path) from None
    except Exception as e:      # the codecs' own errors (lzma.LZMAError, zlib.error, ...)
        raise InputError(f"{name}-compressed, and corrupt: {type(e).__name__}: {e}",
                         path) from None
    return bytes(out)
