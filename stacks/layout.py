"""Where each kind of lab data lives in the lab bucket. IAM policies are scoped to these."""

RAW_PREFIX = "raw/transactions/"  # Firehose output: gzip NDJSON, YYYY/MM/DD/HH/ partitions
RAW_ERRORS_PREFIX = "raw-errors/"  # Firehose delivery failures
LABELS_PREFIX = "labels/"  # chargebacks (ground truth), delivered apart from the stream

# What SageMaker jobs read, and what they write.
SAGEMAKER_READ_PREFIXES = (RAW_PREFIX, LABELS_PREFIX, "code/", "features/", "models/", "capture/", "monitoring/")
SAGEMAKER_WRITE_PREFIXES = ("features/", "models/", "evaluation/", "capture/", "monitoring/", "quarantine/")
