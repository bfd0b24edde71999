"""Compressed kernel modules: ``.ko.xz``, ``.ko.zst`` and ``.ko.gz``.

Distributions ship modules compressed (Debian 6.12: xz).  ``scan``, ``check``
and ``verify`` read them transparently, recognised by their magic bytes (not
their name); ``write`` refuses them, since a compressed module is a packaged
artifact.  Decompression streams into a bounded buffer: an input that would
expand past ``MAX_EXPANDED`` (or past ``RATIO`` times the compressed bytes
read plus ``MARGIN``) is refused, so a small hostile file never costs gigabytes.  The
codecs are imported only for a compressed input.
"""
from __future__ import annotations

from ..errors import InputError

#: name -> magic bytes at the start of the file
MAGICS = {"xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd", "gzip": b"\x1f\x8b"}
#: the largest expanded size accepted (the biggest 6.1 module is ~30 MB)
MAX_EXPANDED = 1 << 30
#: and at most this many times the compressed bytes read, plus MARGIN
RATIO = 64
MARGIN = 64 << 20
_CHUNK = 1 << 20
#: the most output taken from a codec at once
_PIECE = 1 << 20


def compression(data: bytes) -> str | None:
    """``xz``, ``zstd`` or ``gzip`` for compressed data, else None."""
    for name, magic in MAGICS.items():
        if data.startswith(magic):
            return name
    return None


def _streams(name: str):
    """(pieces(chunk) -> the output of one input chunk, in pieces of at most
    _PIECE bytes where the codec can bound them (lzma, zlib); finished() ->
    bool; unused() -> the bytes fed after the end of the stream) of a codec."""
    if name == "xz":
        import lzma
        d = lzma.LZMADecompressor()

        def xz_pieces(chunk):
            piece = d.decompress(chunk, _PIECE)
            while True:
                yield piece
                if d.eof or d.needs_input:
                    return
                piece = d.decompress(b"", _PIECE)
        return xz_pieces, lambda: d.eof, lambda: d.unused_data
    if name == "gzip":
        import zlib
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)

        def gz_pieces(chunk):
            piece = z.decompress(chunk, _PIECE)
            while True:
                yield piece
                if z.eof or not z.unconsumed_tail:
                    return
                piece = z.decompress(z.unconsumed_tail, _PIECE)
        return gz_pieces, lambda: z.eof, lambda: z.unused_data
    try:
        import zstandard
    except ImportError:
        raise InputError("zstd-compressed, and the zstandard package is not installed "
                         "(pip install zstandard)") from None
    zd = zstandard.ZstdDecompressor().decompressobj()
    # no output bound here: it gets small input slices, each of which expands by
    # a bounded amount (blocks are at most 128 KiB)
    return (lambda chunk: (zd.decompress(chunk),)), lambda: zd.eof, lambda: zd.unused_data


def decompress(data: bytes, path: str | None = None) -> bytes:
    """The expanded bytes of compressed ``data`` (``data`` itself when it is not
    compressed); InputError when corrupt, truncated, or larger than allowed.

    The bound grows with the compressed bytes the codec has consumed, not with
    the file: bytes after the end of the stream (ignored, as gzip does) buy no
    expansion.  The output comes in pieces of a bounded size, written into one
    buffer that becomes the result without a copy: the peak is the expanded
    size plus a piece, not twice it."""
    import io
    name = compression(data)
    if name is None:
        return data
    step = 512 if name == "zstd" else _CHUNK
    out = io.BytesIO()
    size = 0

    def limit(fed: int) -> int:
        return min(MAX_EXPANDED, RATIO * fed + MARGIN)
    try:
        pieces, finished, unused = _streams(name)
        for pos in range(0, len(data), step):
            fed = min(len(data), pos + step)
            for piece in pieces(data[pos:fed]):
                size += out.write(piece)
                if finished():
                    fed -= len(unused())        # bytes after the stream buy nothing
                if size > limit(fed):
                    raise InputError(f"{name}-compressed, and expands to more than "
                                     f"{limit(fed)} bytes: refused", path)
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
    return out.getvalue()       # the buffer itself (CPython: no copy)
