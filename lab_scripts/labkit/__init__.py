"""Shared helpers for the numbered lab scripts: session, stack outputs, records, console."""
import sys
from pathlib import Path

# The steps share code with the containers (processing/, inference/): make the repo root
# importable however a step is started (`python lab_scripts/01_….py` puts only lab_scripts/ on the path).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
