"""What steps 08 and 09 give back before they wait beside serving containers: the memory a
freed landed history took (pyarrow's pool and the C heap keep freed memory for reuse until
labkit.traffic.release_freed_memory hands it back). Measured in a process of its own, so
that its memory figures are its own; Linux only (it reads /proc)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HISTORY_FREED = """
import gc, gzip
import pandas as pd
from labkit.transactions import generate
from labkit.traffic import features_of, release_freed_memory
from processing.validation import validate_objects
rss = lambda: int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
data = generate(200_000, seed=7)
bodies = [gzip.compress(data.transactions.iloc[i:i + 5000].to_json(orient="records", lines=True).encode(), 1) for i in range(0, 200_000, 5000)]
known = pd.Series(data.labels["is_fraud"].to_numpy(), index=data.labels["transaction_id"]).astype(float)
del data
gc.collect()
release_freed_memory()
before = rss()
def payloads():
    history = validate_objects(bodies).frame
    return features_of(history, history["transaction_id"].map(known), history.index[-5000:], 7)
rows = payloads()
gc.collect()
held = rss()
release_freed_memory()
print(before, held, rss())
"""


def run() -> dict[str, float]:
    if not Path("/proc/self/status").exists():
        return {}
    ran = subprocess.run([sys.executable, "-c", HISTORY_FREED], cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lab_scripts'}"},
                         capture_output=True, text=True, timeout=300, check=True)
    before, held, after = map(float, ran.stdout.split())
    return {
        "history_200k_freed_but_held_mib": held - before,  # what a freed history keeps without the release
        "history_200k_after_release_mib": after - before,  # what stays after release_freed_memory
    }
