"""How long to wait between polls: short at first (local runs settle in a second), then
longer (a cloud job takes minutes, and every Describe call counts against API limits)."""
from __future__ import annotations

from typing import Iterator


def intervals(first: float = 0.1, factor: float = 1.25, longest: float = 5.0) -> Iterator[float]:
    wait = first
    while True:
        yield wait
        wait = min(longest, wait * factor)


# A wait longer than this shows progress at least this often, so no step goes quiet.
PROGRESS_SECONDS = 10.0
