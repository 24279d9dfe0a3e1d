"""Reading Firehose output: newline-delimited JSON, GZIP-compressed or not.

Detect gzip by its magic bytes, never by assumption or file name: the hands-on article
read gzip files as text. A gzip object that cannot be read whole (cut off in transit, a
damaged block) raises CorruptObject, which carries the lines that could be salvaged, so
each reader can quarantine the object by name instead of failing on it. Shared by the
processing job and the lab's read-back check.
"""
from __future__ import annotations

import gzip
import zlib

GZIP_MAGIC = b"\x1f\x8b"
_SALVAGE_CHUNK = 1 << 16


class CorruptObject(ValueError):
    """An object that is not readable gzip; `salvaged` holds its complete lines before the damage."""

    def __init__(self, error: str, salvaged: list[str]) -> None:
        super().__init__(error)
        self.salvaged = salvaged


def gunzip(body: bytes) -> bytes:
    """`body` decompressed if it is gzip (several members allowed), else as it is."""
    if body[:2] != GZIP_MAGIC:
        return body
    try:
        return gzip.decompress(body)
    except (EOFError, OSError, zlib.error) as error:  # BadGzipFile is an OSError
        kind = "truncated gzip" if isinstance(error, EOFError) else "damaged gzip"
        salvaged = _salvage(body)
        complete = salvaged[: salvaged.rfind(b"\n") + 1]  # a line cut by the damage is not salvaged
        raise CorruptObject(f"{kind}: {error}", _lines(complete)) from None


def decode_object(body: bytes) -> list[str]:
    """The non-empty lines of a delivered object, gunzipped if it is gzip."""
    return _lines(gunzip(body))


def _lines(body: bytes) -> list[str]:
    return [line for line in body.decode("utf-8", errors="replace").split("\n") if line.strip()]


def _salvage(body: bytes) -> bytes:
    """What decompresses before the damage, fed in chunks so a bad block keeps what came before."""
    inflater, out = zlib.decompressobj(wbits=31), []
    for start in range(0, len(body), _SALVAGE_CHUNK):
        try:
            out.append(inflater.decompress(body[start : start + _SALVAGE_CHUNK]))
        except zlib.error:
            break
    return b"".join(out)
