"""Step 04 — Evaluate the model on held-out data and register it in the model registry.

What you do: run `python lab_scripts/04_evaluate_and_register.py [--margin 0.10] [--budget 0.01]`.
What you see: the trained model scored on the test set (later in time than anything it
trained on): PR-AUC, ROC-AUC, precision/recall/F1 at a threshold chosen on validation,
recall when investigators can review only the top 1 % of payments, the confusion matrix,
recall per fraud scenario, and two baselines — a rule ("amount above X") and the
majority class ("never fraud"), whose 98 % accuracy shows why accuracy misleads at
1-2 % fraud. Then the model package registered with these metrics: Approved if its
PR-AUC beats the rule by --margin, else left PendingManualApproval with the reason.
Plots (PR curve, ROC curve, confusion matrix, feature importance) and evaluation.json go
to S3 and build/evaluation/.

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
import tarfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402

from labkit import console, metrics, results  # noqa: E402
from labkit.cli import step_parser  # noqa: E402
from labkit.errors import LabError, run_step  # noqa: E402
from labkit.model_artifact import ENVIRONMENT, serving_artifact  # noqa: E402
from labkit.outputs import lab_outputs  # noqa: E402
from labkit.sagemaker import TAGS, read_pointer, split_uri  # noqa: E402
from labkit.session import aws_session, client, each, stacks_command  # noqa: E402
from processing.features import FEATURE_COLUMNS  # noqa: E402

# Below this many test frauds a recall or precision is a handful of payments: say so.
FEW_FRAUDS = 30
MODEL_FILE = "xgboost-model"  # what the built-in XGBoost container writes and loads
LOCAL_DIR = Path("build/evaluation")


def parse_args() -> argparse.Namespace:
    parser = step_parser(__doc__)
    parser.add_argument("--margin", type=float, default=0.10, help="PR-AUC the model must add over the rule to be approved")
    parser.add_argument("--budget", type=float, default=0.01, help="share of payments investigators can review")
    args = parser.parse_args()
    if not 0 < args.budget < 1:
        parser.error("--budget must be between 0 and 1")
    return args


def load_model(artifact: bytes, model_data: str) -> xgb.Booster:
    """Unpack model.tar.gz and load it the way the serving container does."""
    with tarfile.open(fileobj=io.BytesIO(artifact), mode="r:gz") as archive:
        member = archive.extractfile(MODEL_FILE)
        if member is None:
            raise LabError(f"{model_data} has no {MODEL_FILE}: was it trained by the built-in XGBoost algorithm?")
        raw = bytearray(member.read())
    booster = xgb.Booster()
    booster.load_model(raw)
    # This step is the only work on the machine while it scores: one thread per usable core.
    booster.set_param("nthread", len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return booster


def read_csv_parts(s3, uri: str, header: bool) -> pd.DataFrame:
    bucket, prefix = split_uri(uri)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))
    if not keys:
        raise LabError(f"nothing under {uri}: rerun lab_scripts/02_feature_engineering.py")
    frames = [pd.read_csv(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read()), header=0 if header else None) for k in keys]
    return pd.concat(frames, ignore_index=True)


def evaluate(booster, validation: pd.DataFrame, test: pd.DataFrame, ids: pd.DataFrame, budget: float) -> dict:
    y_val, y_test = validation[0].to_numpy(), test[0].to_numpy()
    score_val = booster.predict(xgb.DMatrix(validation.iloc[:, 1:].to_numpy()))
    score = booster.predict(xgb.DMatrix(test.iloc[:, 1:].to_numpy()))
    threshold = metrics.best_f1_threshold(y_val, score_val)

    # The rule a fraud analyst would write first: large amounts are suspicious.
    amount_val = np.expm1(validation[1 + FEATURE_COLUMNS.index("log_amount")].to_numpy())
    amount = np.expm1(test[1 + FEATURE_COLUMNS.index("log_amount")].to_numpy())
    rule_threshold = metrics.best_f1_threshold(y_val, amount_val)

    model = {
        "pr_auc": metrics.average_precision(y_test, score),
        "roc_auc": metrics.roc_auc(y_test, score),
        "recall_at_budget": metrics.recall_at_budget(y_test, score, budget),
        **metrics.at_threshold(y_test, score, threshold),
    }
    rule = {
        "description": f"fraud if amount >= {rule_threshold:.2f}",
        "pr_auc": metrics.average_precision(y_test, amount),
        "roc_auc": metrics.roc_auc(y_test, amount),
        "recall_at_budget": metrics.recall_at_budget(y_test, amount, budget),
        **metrics.at_threshold(y_test, amount, rule_threshold),
    }
    majority = {"description": "never fraud", "pr_auc": float(y_test.mean()), **metrics.at_threshold(y_test, np.zeros_like(score), 1.0)}
    caught = ids.assign(caught=score >= threshold)
    per_scenario = caught[caught["is_fraud"] == 1].groupby("fraud_scenario")["caught"].agg(["sum", "count"])
    return {
        "test_rows": int(len(y_test)),
        "test_fraud": int(y_test.sum()),
        "alert_budget": budget,
        "model": model,
        "rule_baseline": rule,
        "majority_baseline": majority,
        "recall_by_scenario": {s: {"caught": int(r["sum"]), "fraud": int(r["count"])} for s, r in per_scenario.iterrows()},
        "curves": {"y": y_test, "score": score},
    }


def model_quality_report(report: dict) -> dict:
    """The shape SageMaker's model registry and Studio render (Model Monitor model quality)."""
    m = report["model"]
    c = m["confusion_matrix"]
    return {
        "binary_classification_metrics": {
            "confusion_matrix": {"0": {"0": c["tn"], "1": c["fp"]}, "1": {"0": c["fn"], "1": c["tp"]}},
            "recall": {"value": m["recall"], "standard_deviation": "NaN"},
            "precision": {"value": m["precision"], "standard_deviation": "NaN"},
            "accuracy": {"value": m["accuracy"], "standard_deviation": "NaN"},
            "f1": {"value": m["f1"], "standard_deviation": "NaN"},
            "auc": {"value": m["roc_auc"], "standard_deviation": "NaN"},
            "pr_auc": {"value": m["pr_auc"], "standard_deviation": "NaN"},
        },
        "fraudlab": {k: v for k, v in report.items() if k != "curves"},
    }


def plots(report: dict, booster: xgb.Booster, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    y, score = report["curves"]["y"], report["curves"]["score"]
    paths = []

    figure, axis = plt.subplots(figsize=(5, 4))
    precision, recall, _ = metrics.pr_curve(y, score)
    axis.plot(recall, precision, label=f"model (PR-AUC {report['model']['pr_auc']:.3f})")
    axis.axhline(y.mean(), linestyle="--", color="grey", label=f"random ({y.mean():.3f})")
    axis.set(xlabel="recall", ylabel="precision", title="Precision-recall, test set")
    axis.legend()
    paths.append(_save(figure, directory / "pr_curve.png"))

    figure, axis = plt.subplots(figsize=(5, 4))
    fpr, tpr = metrics.roc_curve(y, score)
    axis.plot(fpr, tpr, label=f"model (ROC-AUC {report['model']['roc_auc']:.3f})")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test set")
    axis.legend()
    paths.append(_save(figure, directory / "roc_curve.png"))

    figure, axis = plt.subplots(figsize=(4, 4))
    c = report["model"]["confusion_matrix"]
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    axis.imshow(grid, cmap="Blues")
    for (row, col), value in np.ndenumerate(grid):
        axis.text(col, row, f"{value:,}", ha="center", va="center", color="black")
    axis.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["legit", "fraud"], yticklabels=["legit", "fraud"],
             xlabel="predicted", ylabel="actual", title=f"Threshold {report['model']['threshold']:.3f}")
    paths.append(_save(figure, directory / "confusion_matrix.png"))

    figure, axis = plt.subplots(figsize=(6, 6))
    gain = booster.get_score(importance_type="gain")
    ranked = sorted(((gain.get(f"f{i}", 0.0), name) for i, name in enumerate(FEATURE_COLUMNS)))[-15:]
    axis.barh([name for _, name in ranked], [value for value, _ in ranked])
    axis.set(xlabel="total gain", title="Feature importance (top 15)")
    paths.append(_save(figure, directory / "feature_importance.png"))
    return paths


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def approval_decision(report: dict, margin: float) -> tuple[str, str]:
    """Approve only a model whose PR-AUC beats the amount rule by `margin`."""
    model_pr_auc, rule_pr_auc = report["model"]["pr_auc"], report["rule_baseline"]["pr_auc"]
    lift = model_pr_auc - rule_pr_auc
    if lift >= margin:
        return "Approved", f"PR-AUC {model_pr_auc:.3f} beats the rule's {rule_pr_auc:.3f} by {lift:.3f} >= {margin}"
    return "PendingManualApproval", f"PR-AUC lift over the rule is {lift:.3f} < {margin}: review it by hand before deploying"


def register(sagemaker, group: str, model: dict, serving_uri: str, evaluation_uri: str, report: dict, margin: float) -> tuple[str, str, str]:
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
            InferenceSpecification={
                # The XGBoost image runs our entry point (script mode): see inference/inference.py.
                "Containers": [{"Image": model["image"], "ModelDataUrl": serving_uri, "Environment": ENVIRONMENT}],
                "SupportedContentTypes": ["text/csv", "application/json"],  # what inference.py accepts
                "SupportedResponseMIMETypes": ["text/csv", "application/json"],
                "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large", "ml.c5.large"],
                "SupportedTransformInstanceTypes": ["ml.m5.large"],
            },
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}},
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties={"training_job": model["training_job"], "pr_auc": f"{report['model']['pr_auc']:.4f}"},
            Tags=TAGS,
        )["ModelPackageArn"], "PendingManualApproval"

    status, reason = approval_decision(report, margin)
    if status == "Approved" and current != "Approved":
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription=reason)
    elif status != "Approved" and current == "Approved":
        return arn, current, f"already Approved earlier (by a run or a reviewer); this run's check says: {reason}"
    return arn, status, reason


def main() -> int:
    args = parse_args()
    session = aws_session()
    outputs = lab_outputs(session, "LabBucketName", "ModelPackageGroupName")
    bucket, s3, sagemaker = outputs["LabBucketName"], client(session, "s3"), client(session, "sagemaker")
    model = read_pointer(s3, bucket, "models/latest.json")
    if model is None:
        raise LabError("no trained model yet: run lab_scripts/03_train_model.py first")

    console.heading(f"Evaluate {model['training_job']} on the held-out test set")
    bucket_of_model, key_of_model = split_uri(model["model_data"])
    training_artifact = s3.get_object(Bucket=bucket_of_model, Key=key_of_model)["Body"].read()
    booster = load_model(training_artifact, model["model_data"])
    validation = read_csv_parts(s3, f"{model['features']}/validation/", header=False)
    test = read_csv_parts(s3, f"{model['features']}/test/", header=False)
    ids = read_csv_parts(s3, f"{model['features']}/test-ids/", header=True)
    report = evaluate(booster, validation, test, ids, args.budget)
    m, rule, majority = report["model"], report["rule_baseline"], report["majority_baseline"]
    console.table(
        [
            ("model", f"{m['pr_auc']:.3f}", f"{m['roc_auc']:.3f}", f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", f"{m['accuracy']:.4f}", f"{m['recall_at_budget']:.3f}"),
            (rule["description"], f"{rule['pr_auc']:.3f}", f"{rule['roc_auc']:.3f}", f"{rule['precision']:.3f}", f"{rule['recall']:.3f}", f"{rule['f1']:.3f}", f"{rule['accuracy']:.4f}", f"{rule['recall_at_budget']:.3f}"),
            (majority["description"], f"{majority['pr_auc']:.3f}", "0.500", "0.000", "0.000", "0.000", f"{majority['accuracy']:.4f}", "-"),
        ],
        ("", "PR-AUC", "ROC-AUC", "precision", "recall", "F1", "accuracy", f"recall@{args.budget:.0%}"),
    )
    console.note(f"'never fraud' is {majority['accuracy']:.1%} accurate and catches nothing: accuracy misleads at {report['test_fraud'] / report['test_rows']:.1%} fraud")
    c = m["confusion_matrix"]
    console.note(f"at threshold {m['threshold']:.3f} (best F1 on validation): {c['tp']} caught, {c['fn']} missed, {c['fp']} false alarms")
    console.table([(s, f"{r['caught']}/{r['fraud']}") for s, r in report["recall_by_scenario"].items()], ("scenario", "caught"))
    if report["test_fraud"] < FEW_FRAUDS:
        console.warn(
            f"only {report['test_fraud']} frauds in the test set: every figure above moves by 1/{report['test_fraud']} with one payment; "
            "treat them as noise and stream more (step 01 --count) for figures you can compare"
        )

    evaluation_prefix = f"evaluation/{model['training_job']}"
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    quality = model_quality_report(report)
    (LOCAL_DIR / "evaluation.json").write_text(json.dumps(quality, indent=2))
    s3.put_object(Bucket=bucket, Key=f"{evaluation_prefix}/evaluation.json", Body=json.dumps(quality, indent=2).encode(), ContentType="application/json")
    for path in plots(report, booster, LOCAL_DIR):
        s3.upload_file(str(path), bucket, f"{evaluation_prefix}/{path.name}")
    console.done(f"evaluation.json and 4 plots at s3://{bucket}/{evaluation_prefix}/ and {LOCAL_DIR}/")

    console.heading("Package the model for serving")
    serving_key = f"models/{model['training_job']}/serving/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=serving_key, Body=serving_artifact(training_artifact, m["threshold"]))
    console.done(f"s3://{bucket}/{serving_key}: xgboost-model, threshold {m['threshold']:.3f}, code/inference.py, code/features.py")

    console.heading(f"Register in model package group {outputs['ModelPackageGroupName']}")
    arn, status, reason = register(
        sagemaker, outputs["ModelPackageGroupName"], model, f"s3://{bucket}/{serving_key}",
        f"s3://{bucket}/{evaluation_prefix}/evaluation.json", report, args.margin,
    )
    console.done(f"{arn}: {status}")
    console.note(reason)
    if status == "Approved":
        console.note(f"next: {stacks_command('deploy', f'fraudlab:modelPackageArn={arn}')}  (the endpoint and monitoring stacks)")
    results.record(
        f"PR-AUC {m['pr_auc']:.3f} (rule {rule['pr_auc']:.3f}), {status}",
        test_pr_auc=m["pr_auc"],
        test_roc_auc=m["roc_auc"],
        rule_pr_auc=rule["pr_auc"],
        recall_at_budget=m["recall_at_budget"],
        model_package_arn=arn,
        approval=status,
    )
    return 0


if __name__ == "__main__":
    run_step(main)
