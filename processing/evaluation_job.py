"""The pipeline's evaluation step: a Processing job in the XGBoost image that scores the
trained model on the test period exactly as step 04 does (evaluation.py) and writes

- evaluation/evaluation.json: the model-quality report the registry shows, with `gate`
  (the model's PR-AUC lift over the amount rule), which the pipeline's Condition step
  reads as a property file;
- serving/model.tar.gz: the endpoint's archive (model_artifact.py) with the alert
  threshold chosen on validation, which the RegisterModel step registers.

Run: python3 evaluation_job.py --model DIR --features DIR --evaluation DIR --serving DIR
     [--alerts-per-day K]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the container's code dir is flat

from evaluation import evaluate, load_booster, quality_report  # noqa: E402
from model_artifact import SERVING_CODE, serving_artifact  # noqa: E402

CODE_DIR = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the training job's output (model.tar.gz)")
    parser.add_argument("--features", type=Path, required=True, help="the feature job's output")
    parser.add_argument("--evaluation", type=Path, required=True, help="where evaluation.json goes")
    parser.add_argument("--serving", type=Path, required=True, help="where the serving model.tar.gz goes")
    parser.add_argument("--alerts-per-day", type=int, default=100, help="cards investigators can review a day (k)")
    args = parser.parse_args(argv)
    if args.alerts_per_day < 1:
        parser.error("--alerts-per-day must be at least 1")
    return args


def read_parts(directory: Path, header: bool) -> pd.DataFrame:
    """Every part file of one output folder (one per processing host), in name order."""
    parts = sorted(p for p in directory.glob("*.csv"))
    if not parts:
        raise SystemExit(f"no CSV parts in {directory}: did the feature job write this set?")
    return pd.concat([pd.read_csv(p, header=0 if header else None) for p in parts], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    archives = sorted(args.model.rglob("model.tar.gz"))
    if len(archives) != 1:
        raise SystemExit(f"expected one model.tar.gz under {args.model}, found {len(archives)}")
    training_artifact = archives[0].read_bytes()
    booster = load_booster(training_artifact, len(os.sched_getaffinity(0)))
    sets = {name: read_parts(args.features / name, header=name.endswith("-ids")) for name in ("validation", "test", "validation-ids", "test-ids")}
    report = evaluate(booster, sets["validation"], sets["test"], sets["validation-ids"], sets["test-ids"], args.alerts_per_day)

    quality = quality_report(report)
    args.evaluation.mkdir(parents=True, exist_ok=True)
    (args.evaluation / "evaluation.json").write_text(json.dumps(quality, indent=2))
    code = {name: (CODE_DIR / name.removeprefix("code/")).read_bytes() for name in SERVING_CODE}
    args.serving.mkdir(parents=True, exist_ok=True)
    (args.serving / "model.tar.gz").write_bytes(serving_artifact(training_artifact, report["model"]["threshold"], code))
    print(json.dumps({"gate": quality["gate"], "threshold": report["model"]["threshold"], "test_rows": report["test_rows"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
