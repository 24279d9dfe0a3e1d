"""Reading Firehose output: newline-delimited JSON, GZIP-compressed or not.

Detect gzip by its magic bytes, never by assumption or file name: the hands-on article
read gzip files as text. Shared by the processing job and the lab's read-back check.
"""
from __future__ import annotations

import gzip

GZIP_MAGIC = b"\x1f\x8b"


def decode_object(body: bytes) -> list[str]:
    """The non-empty lines of a delivered object, gunzipped if it is gzip."""
    if body[:2] == GZIP_MAGIC:
        body = gzip.decompress(body)
    return [line for line in body.decode("utf-8", errors="replace").split("\n") if line.strip()]
