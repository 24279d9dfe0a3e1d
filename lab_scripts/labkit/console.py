"""Printing that teaches: step headers, results, a progress bar, small tables."""
from __future__ import annotations

import sys
import time


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def done(text: str) -> None:
    print(f"✓ {text}", flush=True)


def note(text: str) -> None:
    print(f"  {text}", flush=True)


def warn(text: str) -> None:
    """Something to keep in mind, not a failure."""
    print(f"! {text}", flush=True)


def failed(text: str) -> None:
    print(f"✗ {text}", flush=True)


def table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))


class Progress:
    """A one-line progress bar on a terminal; a line every 10 % elsewhere (CI logs)."""

    def __init__(self, total: int, label: str, stream=sys.stdout) -> None:
        self.total, self.label, self.stream = max(total, 1), label, stream
        self.count, self.started = 0, time.monotonic()
        self._last_tenth = -1
        self._tty = stream.isatty()

    def advance(self, amount: int) -> None:
        self.count += amount
        fraction = min(self.count / self.total, 1.0)
        rate = self.count / max(time.monotonic() - self.started, 1e-9)
        text = f"{self.label} {self.count:,}/{self.total:,} ({fraction:4.0%}, {rate:,.0f}/s)"
        if self._tty:
            bar = "#" * int(fraction * 30)
            self.stream.write(f"\r  [{bar:<30}] {text}")
            self.stream.flush()
        elif int(fraction * 10) > self._last_tenth:
            self._last_tenth = int(fraction * 10)
            print(f"  {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
