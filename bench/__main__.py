"""`python -m bench`: run every benchmark, print the figures, update bench/results.json."""
from __future__ import annotations

from bench import drift, iam, ingest, lab, memory, pipeline, serving
from bench.results import RESULTS, save


def main() -> None:
    figures = {**ingest.run(), **pipeline.run(), **serving.run(), **drift.run(), **iam.run(), **memory.run(), **lab.run()}
    for name, value in figures.items():
        print(f"{name:32s} {value:12,.3f}")
    save(figures)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
