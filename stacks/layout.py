"""Where each kind of lab data lives in the lab bucket. IAM policies are scoped to these."""
from __future__ import annotations

from dataclasses import dataclass

RAW_PREFIX = "raw/transactions/"  # Firehose output: gzip NDJSON, YYYY/MM/DD/HH/ partitions
RAW_ERRORS_PREFIX = "raw-errors/"  # Firehose delivery failures
LABELS_PREFIX = "labels/"  # chargebacks (ground truth), delivered apart from the stream


@dataclass(frozen=True)
class JobAccess:
    """What one kind of SageMaker job reads and writes in the lab bucket, and why."""

    role: str  # construct id prefix and output name: <role>RoleArn
    description: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]


# One execution role per kind of job, each reaching only its own prefixes: the endpoint
# cannot read raw payments or labels, the feature job cannot touch models.
JOB_ACCESS = (
    JobAccess("Processing", "FraudLab feature engineering (Processing jobs)", (RAW_PREFIX, LABELS_PREFIX, "code/"), ("features/", "quarantine/")),
    JobAccess("Training", "FraudLab training and tuning jobs (built-in XGBoost)", ("features/", "models/checkpoints/"), ("models/",)),
    # The pipeline's evaluation step: reads the model and the test set, writes the report and
    # the serving archive it registers (models/pipeline-<execution id>/, which Serving reads).
    JobAccess("Evaluation", "FraudLab pipeline evaluation (Processing jobs)", ("code/", "features/", "models/"), ("evaluation/", "models/pipeline-")),
    JobAccess("Serving", "FraudLab endpoint and batch transform (model, data capture, batch in/out)", ("models/", "batch/input/"), ("capture/", "batch/output/")),
    JobAccess("Monitoring", "FraudLab drift baseline and monitor jobs", ("code/", "features/", "capture/", "monitoring/"), ("monitoring/",)),
)
