"""Each step leaves its key figures in build/lab-results/<step>.json for the lab summary."""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS_DIR = Path("build/lab-results")


def record(key_figure: str, **metrics: float | int | str) -> None:
    """Save this step's one-line key figure and its metrics (numbers carry units in their names)."""
    step = Path(sys.argv[0]).stem
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{step}.json").write_text(json.dumps({"step": step, "key_figure": key_figure, **metrics}, indent=2))
