"""bench/results.json: one entry per figure, the unit in its name (e.g. ingest_records_per_s)."""
from __future__ import annotations

import json
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def save(figures: dict[str, float]) -> None:
    """Merge `figures` into results.json, keeping other benchmarks' entries."""
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update({name: round(value, 3) for name, value in figures.items()})
    current["machine"] = f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"
    RESULTS.write_text(json.dumps(dict(sorted(current.items())), indent=2) + "\n")
