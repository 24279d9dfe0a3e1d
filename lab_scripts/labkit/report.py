"""The lab report: one HTML page (plus the evaluation plots) from what the steps recorded.

Built from build/lab-results/<step>.json and build/evaluation/*.png, so it works after an
offline run and after a cloud run alike: `python -m labkit.report` rebuilds it.
"""
from __future__ import annotations

import html
import json
import shutil
import sys
from pathlib import Path

from labkit.results import RESULTS_DIR  # where the steps record their figures

EVALUATION_DIR = Path("build/evaluation")
REPORT_DIR = Path("build/lab-report")
PLOTS = ("pr_curve.png", "roc_curve.png", "confusion_matrix.png", "feature_importance.png")
ARCHITECTURE = (
    ("Firehose (Direct PUT)", "transactions, GZIP, date partitions"),
    ("S3 lab bucket (KMS)", "raw/, labels/, features/, models/, capture/, monitoring/"),
    ("Processing job", "validate, quarantine, features, time split, baseline"),
    ("Training job", "built-in XGBoost 3.2, early stopping"),
    ("Model registry", "evaluation metrics, approval"),
    ("Real-time endpoint", "VPC, KMS, data capture, autoscaling, alarms"),
    ("Drift monitor", "Scheduler -> Processing job -> reports, metrics"),
    ("CloudWatch alarm -> SNS (KMS)", "violations notify"),
)
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3} .ok{color:#176f2c;font-weight:600} .failed{color:#b00020;font-weight:600}
.flow{display:flex;flex-wrap:wrap;gap:.4em;align-items:center;border:2px dashed #8aa;padding:.8em;border-radius:8px}
.box{border:1px solid #467;border-radius:6px;padding:.4em .6em;background:#eef5f8;font-size:.9em;max-width:12em}
.box small{display:block;color:#555} .arrow{font-size:1.3em;color:#467}
.plots{display:grid;grid-template-columns:repeat(2,1fr);gap:1em} .plots img{width:100%;border:1px solid #ddd}
.muted{color:#666;font-size:.9em}
"""


def load_results(directory: Path = RESULTS_DIR) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def _table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(results: dict, step: str, key: str, fmt: str = "{}") -> str:
    value = results.get(step, {}).get(key)
    return fmt.format(value) if value is not None else "not run"


def render(results: dict[str, dict], summary: list[tuple[str, bool, float, str]], plots: list[str], title: str) -> str:
    flow = '<span class="arrow">&rarr;</span>'.join(
        f'<div class="box">{html.escape(name)}<small>{html.escape(note)}</small></div>' for name, note in ARCHITECTURE
    )
    steps = _table(
        ("step", "status", "time", "key figure"),
        [(step, "ok" if ok else "FAILED", f"{seconds:.1f} s", figure) for step, ok, seconds, figure in summary],
    ).replace("<td>ok</td>", '<td class="ok">ok</td>').replace("<td>FAILED</td>", '<td class="failed">FAILED</td>')
    data = _table(("figure", "value"), [
        ("records landed", _figure(results, "01_stream_transactions", "records_landed", "{:,}")),
        ("S3 objects written by Firehose", _figure(results, "01_stream_transactions", "objects_landed", "{:,}")),
        ("training rows (time split)", _figure(results, "02_feature_engineering", "training_rows", "{:,}")),
        ("records quarantined", _figure(results, "02_feature_engineering", "quarantined_records", "{:,}")),
    ])
    model = _table(("metric", "value"), [
        ("validation PR-AUC (training job)", _figure(results, "03_train_model", "validation_aucpr", "{:.3f}")),
        ("test PR-AUC", _figure(results, "04_evaluate_and_register", "test_pr_auc", "{:.3f}")),
        ("test ROC-AUC", _figure(results, "04_evaluate_and_register", "test_roc_auc", "{:.3f}")),
        ("amount-rule PR-AUC (baseline)", _figure(results, "04_evaluate_and_register", "rule_pr_auc", "{:.3f}")),
        ("recall at a 1 % alert budget", _figure(results, "04_evaluate_and_register", "recall_at_budget", "{:.3f}")),
        ("registry decision", _figure(results, "04_evaluate_and_register", "approval")),
    ])
    images = "".join(f'<figure><img src="{html.escape(p)}" alt="{html.escape(p)}"><figcaption>{html.escape(p)}</figcaption></figure>' for p in plots)
    serving = _table(("figure", "value"), [
        ("payments scored", _figure(results, "06_score_transactions", "scored", "{:,}")),
        ("precision / recall at the threshold", f"{_figure(results, '06_score_transactions', 'precision', '{:.2f}')} / {_figure(results, '06_score_transactions', 'recall', '{:.2f}')}"),
        ("client latency p50 (single payment)", _figure(results, "06_score_transactions", "latency_p50_ms", "{:.1f} ms")),
        ("client latency p99 (single payment)", _figure(results, "06_score_transactions", "latency_p99_ms", "{:.1f} ms")),
    ])
    drift = results.get("07_monitor_drift", {})
    detected = [tuple(item.split(":", 1)) for item in drift.get("detected", "").split(",") if item]
    drift_html = _table(("window", "violations", "alarm"), [
        ("clean traffic", drift.get("clean_violations", "not run"), "OK" if drift else "not run"),
        ("injected drift", drift.get("drift_violations", "not run"), drift.get("alarm_state", "not run")),
    ]) + (_table(("feature", "check"), detected) if detected else "")
    teardown = _figure(results, "08_teardown", "key_figure")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">FraudLab: fraud detection on SageMaker, step by step. Built from build/lab-results/.</p>
<h2>Steps</h2>{steps}
<h2>Architecture</h2><div class="flow">{flow}</div>
<p class="muted">Everything runs in an isolated VPC (no NAT, no internet gateway); data and volumes are encrypted with the lab's KMS key.</p>
<h2>Data landed and features</h2>{data}
<h2>Model</h2>{model}<div class="plots">{images}</div>
<h2>Endpoint</h2>{serving}
<h2>Drift monitoring</h2>{drift_html}
<h2>Teardown</h2><p>{html.escape(teardown)}</p>
</body></html>
"""


def build(summary: list[tuple[str, bool, float, str]], title: str = "FraudLab lab report", root: Path = Path(".")) -> Path:
    """Write <root>/build/lab-report/index.html and copy the plots beside it; returns the page."""
    out = root / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for name in PLOTS:
        if (root / EVALUATION_DIR / name).exists():
            shutil.copyfile(root / EVALUATION_DIR / name, out / name)
            plots.append(name)
    page = out / "index.html"
    page.write_text(render(load_results(root / RESULTS_DIR), summary, plots, title))
    return page


if __name__ == "__main__":
    rows = [(step, True, 0.0, r.get("key_figure", "")) for step, r in load_results().items()]
    print(build(rows), file=sys.stdout)
