"""The lab report: one HTML page (plus the evaluation plots) from what the steps recorded.

Built from build/lab-results/<step>.json and build/evaluation/*.png, so it works after an
offline run and after a cloud run alike: `python lab_scripts/report.py` rebuilds it.
"""
from __future__ import annotations

import html
import json
import shutil
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from processing.evaluation import with_interval  # the figures' format, as step 04 prints them
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
# Text and background colour pairs the page uses (tests/test_report.py checks each for
# WCAG AA contrast, 4.5:1): body text, muted text, status words, links, header cells, boxes.
PALETTE = {
    "text": ("#1f1f1f", "#ffffff"), "muted": ("#555555", "#ffffff"), "ok": ("#176f2c", "#ffffff"),
    "failed": ("#b00020", "#ffffff"), "link": ("#0b57a4", "#ffffff"), "header": ("#1f1f1f", "#eef1f4"),
    "box": ("#1f1f1f", "#e8f1f6"), "box-note": ("#4a4a4a", "#e8f1f6"), "over": ("#8a1c00", "#ffffff"),
}
def _versions() -> str:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"
    return f"XGBoost image 3.2-0; boto3 {version('boto3')}; aws-cdk-lib {version('aws-cdk-lib')}; xgboost {version('xgboost-cpu')}"


VERSIONS = _versions()
STYLE = f"""
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:{PALETTE['text'][0]};background:{PALETTE['text'][1]}}}
h1{{margin-bottom:.2em}} h2{{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}}
a{{color:{PALETTE['link'][0]}}}
table{{border-collapse:collapse;margin:.6em 0}} td,th{{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}}
th{{background:{PALETTE['header'][1]}}} td.why{{color:{PALETTE['muted'][0]};font-size:.9em;max-width:34em}}
.ok{{color:{PALETTE['ok'][0]};font-weight:600}} .failed{{color:{PALETTE['failed'][0]};font-weight:600}}
.flow{{display:flex;flex-wrap:wrap;gap:.4em;align-items:center;border:2px dashed #7a9aa8;padding:.8em;border-radius:8px}}
.box{{border:1px solid #467;border-radius:6px;padding:.4em .6em;background:{PALETTE['box'][1]};font-size:.9em;max-width:12em}}
.box small{{display:block;color:{PALETTE['box-note'][0]}}} .arrow{{font-size:1.3em;color:#345}}
.plots{{display:grid;grid-template-columns:repeat(2,1fr);gap:1em}} .plots img{{width:100%;border:1px solid #ccc}}
.muted{{color:{PALETTE['muted'][0]};font-size:.9em}} code{{font-size:.9em}}
"""


def load_results(directory: Path = RESULTS_DIR) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


class Markup(str):
    """HTML built here, escaped where it was made: a table shows it as it is."""


def _cell(value: object) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value))


def _table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _explained(rows: list[tuple[object, object, str]]) -> str:
    """A figure table whose third column says, in a sentence, what the figure means."""
    head = "<tr><th>figure</th><th>value</th><th>what it says</th></tr>"
    body = "".join(
        f'<tr><td>{html.escape(str(figure))}</td><td>{html.escape(str(value))}</td><td class="why">{html.escape(why)}</td></tr>'
        for figure, value, why in rows
    )
    return f"<table>{head}{body}</table>"


def _figure(results: dict, step: str, key: str, fmt: str = "{}") -> str:
    value = results.get(step, {}).get(key)
    return fmt.format(value) if value is not None else "not run"


def _with_interval(figures: dict, key: str) -> str:
    """"0.612 [0.43, 0.76]" from a figure and its recorded <key>_interval."""
    if key not in figures:
        return "not run"
    interval = figures.get(f"{key}_interval")
    return with_interval(figures[key], interval) if interval else f"{figures[key]:.3f}"


def _links(results: dict) -> list[tuple[str, Markup]]:
    """Where to look at this run's resources: console pages of its region on AWS; offline,
    the S3 URIs and the AWS CLI command against the local AWS."""
    run = results.get("00_preflight", {})
    region, bucket, local = run.get("region", ""), run.get("bucket", ""), run.get("endpoint_url", "")
    endpoint = results.get("05_deploy_endpoint", {}).get("endpoint_name", "")
    if not region or not bucket:
        return []
    prefixes = ("raw/", "features/", "models/", "capture/", "monitoring/")
    if local:
        cli = lambda command: Markup(f"<code>{html.escape(f'aws --endpoint-url {local} --region {region} {command}')}</code>")  # noqa: E731
        rows = [(f"s3://{bucket}/{p}", cli(f"s3 ls s3://{bucket}/{p}")) for p in prefixes]
        if endpoint:
            rows.append((f"endpoint {endpoint}", cli(f"sagemaker describe-endpoint --endpoint-name {endpoint}")))
        rows.append(("alarms", cli("cloudwatch describe-alarms")))
        return rows
    console = f"https://{region}.console.aws.amazon.com"
    link = lambda url, text: Markup(f'<a href="{html.escape(url)}">{html.escape(text)}</a>')  # noqa: E731
    rows = [(f"s3://{bucket}/{p}", link(f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?region={region}&prefix={p}", "S3 console")) for p in prefixes]
    rows += [
        ("processing and training jobs", link(f"{console}/sagemaker/home?region={region}#/processing-jobs", "SageMaker console")),
        ("model registry", link(f"{console}/sagemaker/home?region={region}#/model-registry", "SageMaker console")),
        ("alarms", link(f"{console}/cloudwatch/home?region={region}#alarmsV2:", "CloudWatch console")),
    ]
    if endpoint:
        rows.insert(5, (f"endpoint {endpoint}", link(f"{console}/sagemaker/home?region={region}#/endpoints/{endpoint}", "SageMaker console")))
    return rows


def _drift_plot(distances: dict[str, float], threshold: float) -> str:
    """Each feature's drift distance in the drifted window as a bar, the threshold as a line (SVG)."""
    shown = sorted(distances.items(), key=lambda item: -item[1])
    if not shown:
        return ""
    width, bar, label, top = 760, 18, 210, max(max(v for _, v in shown), threshold) * 1.1 or 1.0
    scale = (width - label - 60) / top
    rows = []
    for i, (feature, value) in enumerate(shown):
        y = 10 + i * (bar + 6)
        colour = PALETTE["over"][0] if value > threshold else "#4f7f99"
        rows.append(
            f'<text x="{label - 8}" y="{y + bar - 5}" text-anchor="end" font-size="12">{html.escape(feature)}</text>'
            f'<rect x="{label}" y="{y}" width="{max(value * scale, 1):.1f}" height="{bar}" fill="{colour}"/>'
            f'<text x="{label + max(value * scale, 1) + 4:.1f}" y="{y + bar - 5}" font-size="11">{value:.3f}</text>'
        )
    height = 10 + len(shown) * (bar + 6) + 24
    line = label + threshold * scale
    return (
        f'<svg role="img" aria-label="drift distance per feature against the threshold {threshold}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(rows)}'
        f'<line x1="{line:.1f}" x2="{line:.1f}" y1="4" y2="{height - 20}" stroke="#1f1f1f" stroke-dasharray="4 3"/>'
        f'<text x="{line:.1f}" y="{height - 6}" text-anchor="middle" font-size="11">threshold {threshold:g}</text></svg>'
    )


def render(results: dict[str, dict], summary: list[tuple[str, bool, float | None, str]], plots: list[str], title: str, built: datetime | None = None) -> str:
    built = built or datetime.now(timezone.utc)
    run = results.get("00_preflight", {})
    stream = results.get("01_stream_transactions", {})
    flow = '<span class="arrow">&rarr;</span>'.join(
        f'<div class="box">{html.escape(name)}<small>{html.escape(note)}</small></div>' for name, note in ARCHITECTURE
    )
    steps = _table(
        ("step", "status", "time", "key figure"),
        [(step, "ok" if ok else "FAILED", "by hand" if seconds is None else f"{seconds:.1f} s", figure) for step, ok, seconds, figure in summary],
    ).replace("<td>ok</td>", '<td class="ok">ok</td>').replace("<td>FAILED</td>", '<td class="failed">FAILED</td>')
    cost = (f"USD {run['lab_run_usd']:.2f} for this run on AWS in {run['region']}; USD {run['forgotten_usd_per_day']:.2f} "
            "per day if left deployed" if "lab_run_usd" in run else "not estimated")
    about = _explained([
        ("report built", f"{built:%Y-%m-%d %H:%M} UTC", "When this page was made from build/lab-results/."),
        ("where it ran", run.get("backend", "not run"), "AWS, or the local AWS on this machine (same scripts, same calls)."),
        ("region", run.get("region", "not run"), "Prices, console links and the XGBoost image URI depend on it."),
        ("transactions, seed", f"{_figure(results, '01_stream_transactions', 'count', '{:,}')}, seed {stream.get('seed', 'not run')}",
         "The same count and seed generate the same payments: rerun to compare."),
        ("versions", VERSIONS, "The serving image and the libraries the figures came from."),
        ("cloud cost of the same run", cost, "List prices of every billable resource the steps create (`make cost`)."),
    ])
    data = _explained([
        ("records landed", _figure(results, "01_stream_transactions", "records_landed", "{:,}"),
         "Payments Firehose delivered to S3, each once: a rerun sends only what is missing."),
        ("S3 objects written by Firehose", _figure(results, "01_stream_transactions", "objects_landed", "{:,}"),
         "Firehose buffers records (5 MiB or 60 s) and writes them as GZIP objects under date partitions."),
        ("training rows (time split)", _figure(results, "02_feature_engineering", "training_rows", "{:,}"),
         "The oldest payments train; later ones validate and test, as the model would meet the future."),
        ("records quarantined", _figure(results, "02_feature_engineering", "quarantined_records", "{:,}"),
         "Malformed, future-dated or conflicting records set aside with a reason, never silently dropped."),
    ])
    evaluated = results.get("04_evaluate_and_register", {})
    explained = evaluated.get("explanations", {})
    k = evaluated.get("alerts_per_day_budget", "k")
    model = _explained([
        ("validation PR-AUC (training job)", _figure(results, "03_train_model", "validation_aucpr", "{:.3f}"),
         "Precision-recall area on the validation period, which early stopping watched: 1.0 is perfect, the fraud rate is chance."),
        ("test PR-AUC [95 % interval]", _with_interval(evaluated, "test_pr_auc"),
         explained.get("pr_auc", "The same on the test period, a label delay after validation: the figure to trust.")),
        ("test ROC-AUC [95 % interval]", _with_interval(evaluated, "test_roc_auc"),
         explained.get("roc_auc", "How often a fraud ranks above a legitimate payment (0.5 is chance).")),
        (f"card precision at {k} alerts a day [95 % interval]", _with_interval(evaluated, "card_precision"),
         explained.get("alert_budget", "Of the cards investigators can review each day, the share really compromised.")),
        ("amount-rule PR-AUC (baseline)", _figure(results, "04_evaluate_and_register", "rule_pr_auc", "{:.3f}"),
         "A rule that flags large amounts: the model must beat it by a margin to be approved."),
        ("accuracy of 'never fraud'", _figure(results, "04_evaluate_and_register", "majority_accuracy", "{:.1%}"),
         explained.get("accuracy", "At 1-2 % fraud, 'never fraud' is 98-99 % accurate and catches nothing.")),
        ("intervals", "95 %, over days", explained.get("intervals", "Each interval comes from resampling the test days.")),
        ("registry decision", _figure(results, "04_evaluate_and_register", "approval"),
         "Approved packages are what the endpoint stack deploys."),
    ])
    scenarios = evaluated.get("recall_by_scenario", {})
    if scenarios:
        intervals = evaluated.get("recall_by_scenario_interval", {})
        model += _table(("fraud scenario", "caught at the threshold", "recall [95 % interval]"), [
            (name, f"{r['caught']} of {r['fraud']}",
             with_interval(r["caught"] / max(r["fraud"], 1), intervals[name], digits=2) if name in intervals else f"{r['caught'] / max(r['fraud'], 1):.2f}")
            for name, r in scenarios.items()
        ])
        model += f'<p class="muted">{html.escape(explained.get("misses", ""))}</p>'
    images = "".join(f'<figure><img src="{html.escape(p)}" alt="{html.escape(p)}"><figcaption>{html.escape(p)}</figcaption></figure>' for p in plots)
    plots_html = f'<div class="plots">{images}</div>' if images else ""
    serving = _explained([
        ("payments scored", _figure(results, "06_score_transactions", "scored", "{:,}"),
         "Held-out payments sent to the endpoint, features computed client-side as at training."),
        ("precision / recall at the threshold",
         f"{_figure(results, '06_score_transactions', 'precision', '{:.2f}')} / {_figure(results, '06_score_transactions', 'recall', '{:.2f}')}",
         "Of the alerts, the share that were fraud; of the frauds, the share alerted."),
        ("client latency p50 (single payment)", _figure(results, "06_score_transactions", "latency_p50_ms", "{:.1f} ms"),
         "Round trip as the caller sees it; the endpoint's ModelLatency metric is the container's share of it."),
        ("client latency p99 (single payment)", _figure(results, "06_score_transactions", "latency_p99_ms", "{:.1f} ms"),
         "The slowest 1 %: what the latency alarm watches (as ModelLatency p99)."),
    ])
    drift = results.get("08_monitor_drift", {})
    detected = [tuple(item.split(":", 1)) for item in drift.get("detected", "").split(",") if item]
    drift_html = _explained([
        ("clean traffic: violations", drift.get("clean_violations", "not run"), "Normal payments: nothing should be flagged."),
        ("injected drift: violations", drift.get("drift_violations", "not run"),
         "Amounts x3, an unseen category and an empty feature: each must be named."),
        ("alarm after the drift", drift.get("alarm_state", "not run"), "The violations metric crossed its threshold; SNS notified."),
    ]) + (_table(("feature", "check"), detected) if detected else "")
    plot = _drift_plot(drift.get("drift_distances", {}).get("drifted", {}), float(drift.get("drift_threshold", 0.1)))
    if plot:
        drift_html += f'<p class="muted">Drift distance per feature in the drifted window (KS for numbers, L-infinity for categories); red bars are over the threshold.</p>{plot}'
    teardown = _figure(results, "10_teardown", "key_figure")
    links = _links(results)
    links_html = f"<h2>Where to look</h2>{_table(('what', 'where'), links)}" if links else ""
    if links and run.get("endpoint_url"):
        links_html += ('<p class="muted">Offline, these commands work while that local AWS runs; `make lab` stops it at the end. '
                       "`make local-up` starts one (its address is in .localaws/env) for the steps by hand.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">FraudLab: fraud detection on SageMaker, step by step. Built from build/lab-results/.</p>
<h2>This run</h2>{about}
<h2>Steps</h2>{steps}
<h2>Architecture</h2><div class="flow">{flow}</div>
<p class="muted">Everything runs in an isolated VPC (no NAT, no internet gateway); data and volumes are encrypted with the lab's KMS key.</p>
<h2>Data landed and features</h2>{data}
<h2>Model</h2>{model}{plots_html}
<h2>Endpoint</h2>{serving}
<h2>Drift monitoring</h2>{drift_html}
{links_html}
<h2>Teardown</h2><p>{html.escape(teardown)}</p>
</body></html>
"""


def build(summary: list[tuple[str, bool, float | None, str]], title: str = "FraudLab lab report", root: Path = Path(".")) -> Path:
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

