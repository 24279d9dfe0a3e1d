"""Step 04 — Evaluate the model on held-out data, as a fraud team would, and register it.

What you do: run `python lab_scripts/04_evaluate_and_register.py [--margin 0.10] [--alerts-per-day 100]`.
What you see: the trained model (its best iteration, as early stopping chose it) scored on
the test period, which starts one label delay after validation ends, as a model trained
today meets next week's payments. Cards already known to be compromised before a day are
removed from that day: a fraud team has blocked them. Then, each with a 95 % interval
from resampling the test days: PR-AUC, ROC-AUC and card precision at the top-k alerts a
day (k = --alerts-per-day, what the investigators can review), with the best any model
could reach; the alert threshold chosen on validation to send about k cards a day, and
the recall per fraud scenario at it, with what each scenario needs to be caught; two
baselines — a rule ("amount above X") and the majority class ("never fraud"), whose
accuracy shows why accuracy misleads at 1-2 % fraud — and, in plain words, why accuracy,
ROC-AUC and PR-AUC differ. Then the model package registered with these metrics: Approved
if its PR-AUC beats the rule by --margin, else left PendingManualApproval with the reason.
Plots (PR curve with the threshold, ROC curve, confusion matrix, feature importance) and
evaluation.json go to S3 and build/evaluation/.

Where to look: SageMaker console > Inference > Model registry (Studio: Models) >
fraudlab-fraud-detector; S3 evaluation/.

Exam task statements: MLA-C01 2.2 (manage model versions: the model registry, approval
before deployment), 2.3 (analyze model performance: metrics, baselines, confusion
matrix), 3.1 (deployment best practices: versioning); MLS-C01 3.5 (evaluate ML models:
PR-AUC vs accuracy on imbalanced data).
"""
from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import xgboost as xgb

from labkit import console, results
from labkit.cli import step_parser
from labkit.errors import LabError, run_step
from labkit.model_artifact import serving_artifact
from labkit.outputs import lab_outputs
from labkit.plots import evaluation_plots
from labkit.sagemaker import TAGS, approve_command, read_pointer, split_uri
from labkit.session import aws_session, client, each, stacks_command
from labkit.transactions import SCENARIOS
from processing import evaluation
from processing.model_artifact import inference_specification

# Below this many test frauds a recall or precision is a handful of payments: say so.
FEW_FRAUDS = 30
LOCAL_DIR = Path("build/evaluation")


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--margin", type=float, default=0.10, help="PR-AUC the model must add over the rule to be approved")
    parser.add_argument("--alerts-per-day", type=int, default=100, help="cards investigators can review a day (the alert budget, k)")
    args = parser.parse_args()
    if args.alerts_per_day < 1:
        parser.error("--alerts-per-day must be at least 1")
    return args


def load_model(artifact: bytes, model_data: str) -> xgb.Booster:
    """The booster of model.tar.gz, predicting (with its best iteration, see evaluation.py)
    on one thread per usable core: this step is the only work on the machine while it scores."""
    try:
        return evaluation.load_booster(artifact, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    except ValueError as error:
        raise LabError(f"{model_data}: {error}") from None


def read_csv_parts(s3, uri: str, header: bool) -> pd.DataFrame:
    bucket, prefix = split_uri(uri)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))
    if not keys:
        raise LabError(f"nothing under {uri}: rerun lab_scripts/02_feature_engineering.py")
    frames = [pd.read_csv(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read()), header=0 if header else None) for k in keys]
    return pd.concat(frames, ignore_index=True)


def explanations(report: dict) -> dict[str, str]:
    """What the figures mean, in plain words, with this run's numbers."""
    m, majority, k = report["model"], report["majority_baseline"], report["alerts_per_day_budget"]
    rate = report["test_fraud"] / max(report["test_rows"], 1)
    scenarios = report["recall_by_scenario"]
    missed = sorted(scenarios, key=lambda s: scenarios[s]["caught"] / max(scenarios[s]["fraud"], 1))
    misses = "; ".join(
        f"{name}: {scenarios[name]['caught']} of {scenarios[name]['fraud']} caught, since it shows in {SCENARIOS[name].revealed_by}"
        for name in missed[:2] if name in SCENARIOS
    )
    return {
        "accuracy": f"'never fraud' is {majority['accuracy']:.1%} accurate and catches nothing: at {rate:.1%} fraud, accuracy rewards doing nothing.",
        "roc_auc": (f"ROC-AUC {m['roc_auc']:.3f} is the chance that a random fraud scores above a random legitimate payment. "
                    "It is high because most legitimate payments are easy to rank low; it says little about the few alerts investigators see."),
        "pr_auc": (f"PR-AUC {m['pr_auc']:.3f} averages the precision of the alerts over every recall level, so each false alarm among the top "
                   f"scores costs it: a random model scores the fraud rate ({rate:.3f}). It is the figure to compare models by."),
        "alert_budget": (f"Investigators review {k} cards a day: of the day's {k} highest-scored cards, {m['card_precision']:.1%} were compromised on average "
                         f"(card precision@{k}); no model could exceed {m['best_possible']:.1%}, since some days have fewer than {k} compromised cards "
                         f"(of about {report['cards_per_day']:,.0f} cards paying each day). The threshold {m['threshold']:.3f}, chosen on validation, "
                         f"sends about {m['alerts_per_day']:.0f} cards a day."),
        "misses": f"Hardest scenarios: {misses}." if misses else "No fraud in the test period.",
        "intervals": ("Each [low, high] is a 95 % interval from resampling the test days: a difference inside it is noise. "
                      "Fraud comes in clusters (a terminal, a card), so a few days move every figure."),
    }


def model_quality_report(report: dict) -> dict:
    """evaluation.json (processing/evaluation.py's shape, as the pipeline writes it) with the figures explained."""
    return {**evaluation.quality_report(report), "explanations": explanations(report)}


def _with_interval(figures: dict, name: str) -> str:
    return evaluation.with_interval(figures[name], figures["interval"][name])


def _recall_with_interval(model: dict, scenario: str, counts: dict) -> str:
    interval = model["interval"].get(f"recall_{scenario}", (float("nan"), float("nan")))
    return evaluation.with_interval(counts["caught"] / max(counts["fraud"], 1), interval, digits=2)


def show(report: dict) -> None:
    m, rule, majority, k = report["model"], report["rule_baseline"], report["majority_baseline"], report["alerts_per_day_budget"]
    removed = report["removed_known_compromised"]
    console.note(
        f"test period: {report['test_days']} days, {report['test_rows']:,} payments, {report['test_fraud']} frauds, after removing "
        f"{removed['rows']:,} payments ({removed['fraud']} frauds) of cards already known compromised; best iteration {report['best_iteration']}"
    )
    console.table(
        [
            ("model", _with_interval(m, "pr_auc"), _with_interval(m, "roc_auc"), _with_interval(m, "card_precision"), f"{m['best_possible']:.3f}", f"{m['accuracy']:.4f}"),
            (rule["description"], _with_interval(rule, "pr_auc"), _with_interval(rule, "roc_auc"), _with_interval(rule, "card_precision"), f"{rule['best_possible']:.3f}", f"{rule['accuracy']:.4f}"),
            (majority["description"], f"{majority['pr_auc']:.3f}", "0.500", "-", "-", f"{majority['accuracy']:.4f}"),
        ],
        ("", "PR-AUC [95 %]", "ROC-AUC [95 %]", f"card precision@{k}/day [95 %]", "best possible", "accuracy"),
    )
    c = m["confusion_matrix"]
    console.note(
        f"threshold {m['threshold']:.3f} (the score of card no. {k} on a median validation day): {m['alerts_per_day']:.1f} cards alerted a day; "
        f"{c['tp']} frauds caught, {c['fn']} missed, {c['fp']} false alarms; recall {_with_interval(m, 'recall_at_threshold')}, "
        f"precision {_with_interval(m, 'precision_at_threshold')}"
    )
    console.table(
        [(name, f"{r['caught']}/{r['fraud']}", _recall_with_interval(m, name, r), SCENARIOS[name].revealed_by if name in SCENARIOS else "-")
         for name, r in report["recall_by_scenario"].items()],
        ("scenario", "caught", "recall [95 %]", "what reveals it"),
    )
    for text in explanations(report).values():
        console.note(text)
    if k > 0.05 * report["cards_per_day"]:
        console.warn(
            f"{k} alerts a day is {k / max(report['cards_per_day'], 1):.0%} of the ~{report['cards_per_day']:,.0f} cards paying each day in this data; "
            f"a fraud team reviews about 1 %: pass --alerts-per-day {max(1, round(report['cards_per_day'] / 100))} for a budget of that scale"
        )
    if report["test_fraud"] < FEW_FRAUDS:
        console.warn(
            f"only {report['test_fraud']} frauds in the test period: every figure above moves by 1/{report['test_fraud']} with one payment "
            "(see the intervals); stream more (step 01 --count) for figures you can compare"
        )


def model_package(sagemaker, group: str, model: dict, serving_uri: str, evaluation_uri: str, report: dict, margin: float) -> tuple[str, str, str]:
    """Create the model package (once per training job) and apply the approval decision."""
    arn = None
    for summary in each(sagemaker, "list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=group):
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if described.get("CustomerMetadataProperties", {}).get("training_job") == model["training_job"]:
            arn, current = summary["ModelPackageArn"], described["ModelApprovalStatus"]
            break
    if arn is None:
        arn, current = sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=f"XGBoost fraud model from {model['training_job']}",
            InferenceSpecification=inference_specification(model["image"], serving_uri),
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}},
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties={"training_job": model["training_job"], "pr_auc": f"{report['model']['pr_auc']:.4f}"},
            Tags=TAGS,
        )["ModelPackageArn"], "PendingManualApproval"

    status, reason = evaluation.approval_decision(report, margin)
    if status == "Approved" and current != "Approved":
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription=reason)
    elif status != "Approved" and current == "Approved":
        return arn, current, f"already Approved earlier (by a run or a reviewer); this run's check says: {reason}"
    return arn, status, reason


# A NamedTuple, not a dataclass: dataclasses need the module in sys.modules, and the tests
# load numbered steps (names starting with a digit) without registering them.
class Evaluated(NamedTuple):
    """The trained model and its figures on the test period."""

    model: dict  # models/latest.json: the training job and its archive
    artifact: bytes  # model.tar.gz as training wrote it
    booster: xgb.Booster
    report: dict  # processing/evaluation.py's evaluate()

    @property
    def prefix(self) -> str:
        return f"evaluation/{self.model['training_job']}"


def evaluate(s3, bucket: str, alerts_per_day: int) -> Evaluated:
    """The latest trained model, scored on the held-out test period (validation chooses its threshold)."""
    model = read_pointer(s3, bucket, "models/latest.json")
    if model is None:
        raise LabError("no trained model yet: run lab_scripts/03_train_model.py first")
    console.heading(f"Evaluate {model['training_job']} on the held-out test set")
    bucket_of_model, key_of_model = split_uri(model["model_data"])
    artifact = s3.get_object(Bucket=bucket_of_model, Key=key_of_model)["Body"].read()
    booster = load_model(artifact, model["model_data"])
    validation = read_csv_parts(s3, f"{model['features']}/validation/", header=False)
    test = read_csv_parts(s3, f"{model['features']}/test/", header=False)
    validation_ids = read_csv_parts(s3, f"{model['features']}/validation-ids/", header=True)
    test_ids = read_csv_parts(s3, f"{model['features']}/test-ids/", header=True)
    report = evaluation.evaluate(booster, validation, test, validation_ids, test_ids, alerts_per_day)
    return Evaluated(model, artifact, booster, report)


def publish(s3, bucket: str, evaluated: Evaluated) -> str:
    """evaluation.json and the plots, in S3 (beside the model package) and in LOCAL_DIR; the
    S3 URI of evaluation.json, which the package's ModelQuality metrics point to."""
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    quality = model_quality_report(evaluated.report)
    (LOCAL_DIR / "evaluation.json").write_text(json.dumps(quality, indent=2))
    s3.put_object(Bucket=bucket, Key=f"{evaluated.prefix}/evaluation.json", Body=json.dumps(quality, indent=2).encode(), ContentType="application/json")
    for path in evaluation_plots(evaluated.report, evaluated.booster, LOCAL_DIR):
        s3.upload_file(str(path), bucket, f"{evaluated.prefix}/{path.name}")
    console.done(f"evaluation.json and 4 plots at s3://{bucket}/{evaluated.prefix}/ and {LOCAL_DIR}/")
    return f"s3://{bucket}/{evaluated.prefix}/evaluation.json"


def pack_serving_artifact(s3, bucket: str, evaluated: Evaluated) -> str:
    """The training archive plus the alert threshold and the serving code; its S3 URI."""
    console.heading("Package the model for serving")
    threshold = evaluated.report["model"]["threshold"]
    serving_key = f"models/{evaluated.model['training_job']}/serving/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=serving_key, Body=serving_artifact(evaluated.artifact, threshold))
    console.done(f"s3://{bucket}/{serving_key}: xgboost-model, threshold {threshold:.3f}, code/inference.py, code/features.py")
    return f"s3://{bucket}/{serving_key}"


def register(sagemaker, group: str, evaluated: Evaluated, serving_uri: str, evaluation_uri: str, margin: float) -> tuple[str, str]:
    """The model package, Approved or waiting for a reviewer, and what to do next: (ARN, status)."""
    console.heading(f"Register in model package group {group}")
    arn, status, reason = model_package(sagemaker, group, evaluated.model, serving_uri, evaluation_uri, evaluated.report, margin)
    console.done(f"{arn}: {status}")
    console.note(reason)
    if status == "Approved":
        console.note(f"next: {stacks_command('deploy', f'fraudlab:modelPackageArn={arn}')}  (the endpoint and monitoring stacks)")
    else:
        console.warn(
            f"not deployable until approved: review the figures above, then `{approve_command(arn)}`; "
            "or stream more payments (step 01, default 100,000) and rerun steps 02 and 03 with --rerun, then 04"
        )
    return arn, status


def record(report: dict, alerts_per_day: int, arn: str, status: str) -> None:
    m, rule = report["model"], report["rule_baseline"]
    interval = m["interval"]
    results.record(
        f"PR-AUC {m['pr_auc']:.3f} [{interval['pr_auc'][0]:.2f}, {interval['pr_auc'][1]:.2f}] (rule {rule['pr_auc']:.3f}), {status}",
        test_pr_auc=m["pr_auc"],
        test_pr_auc_interval=interval["pr_auc"],
        test_roc_auc=m["roc_auc"],
        test_roc_auc_interval=interval["roc_auc"],
        rule_pr_auc=rule["pr_auc"],
        majority_accuracy=report["majority_baseline"]["accuracy"],
        alerts_per_day_budget=alerts_per_day,
        card_precision=m["card_precision"],
        card_precision_interval=interval["card_precision"],
        card_precision_best_possible=m["best_possible"],
        recall_by_scenario=report["recall_by_scenario"],
        recall_by_scenario_interval={name: interval[f"recall_{name}"] for name in report["recall_by_scenario"]},
        explanations=explanations(report),
        model_package_arn=arn,
        approval=status,
    )


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "ModelPackageGroupName")
    bucket, s3, sagemaker = outputs["LabBucketName"], client(session, "s3"), client(session, "sagemaker")

    evaluated = evaluate(s3, bucket, args.alerts_per_day)
    show(evaluated.report)
    evaluation_uri = publish(s3, bucket, evaluated)
    serving_uri = pack_serving_artifact(s3, bucket, evaluated)
    arn, status = register(sagemaker, outputs["ModelPackageGroupName"], evaluated, serving_uri, evaluation_uri, args.margin)
    record(evaluated.report, args.alerts_per_day, arn, status)
    return 0


if __name__ == "__main__":
    run_step(main)
