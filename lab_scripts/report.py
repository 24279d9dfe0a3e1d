"""The lab report: one HTML page from what the steps recorded.

What you do: run `python lab_scripts/report.py` after the steps, by hand or on AWS
(`make lab` writes it for you at the end).
What you see: the path of build/lab-report/index.html; open it in a browser. It shows where
and how the run went (date, backend, region, size, seed, versions, what the same run costs
on AWS), each step's key figure, the figures of each stage with a sentence on what each
means, the evaluation plots, the drift distances against the threshold, and where to look
(console pages of the run's region; offline, S3 URIs and AWS CLI commands).

Built from build/lab-results/<step>.json and build/evaluation/*.png in the current
directory, so it works after an offline run and after a cloud run alike.
"""
from __future__ import annotations

from labkit import console, report
from labkit.cli import step_parser
from labkit.errors import LabError, run_step


def main() -> int:
    step_parser(__doc__).parse_args()  # no options: --help shows what it does
    recorded = report.load_results()
    if not recorded:
        raise LabError("no step results in build/lab-results/: run the steps first (from this directory)")
    # Run by hand, the steps' times are not known: the table says so.
    page = report.build([(step, True, None, figures.get("key_figure", "")) for step, figures in recorded.items()])
    console.done(f"report: {page} (open it in a browser)")
    return 0


if __name__ == "__main__":
    run_step(main)
