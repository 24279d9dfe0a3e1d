"""Send records to Kinesis Data Firehose in batches, retrying only the records that failed.

PutRecordBatch is not all-or-nothing: it can return HTTP 200 with FailedPutCount > 0,
and the caller must resend exactly the failed entries (in order) or lose them. That is
the bug the hands-on article's loop of put_record calls never meets, and an exam topic.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from botocore.exceptions import ClientError

# Service limits for PutRecordBatch (Firehose quotas, unchanged since launch).
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1000 * 1024
RETRYABLE_CALL_ERRORS = {"ServiceUnavailableException", "ThrottlingException", "LimitExceededException"}


@dataclass
class SendSummary:
    sent: int = 0  # records Firehose accepted
    retried: int = 0  # record resends after a partial failure or throttled call
    calls: int = 0
    failed: list[bytes] = field(default_factory=list)  # given up after max_attempts


def batches(records: Iterable[bytes], max_records: int = MAX_RECORDS_PER_CALL) -> Iterator[list[bytes]]:
    """Group records into calls within the count and size limits."""
    if not 1 <= max_records <= MAX_RECORDS_PER_CALL:
        raise ValueError(f"batch size must be 1-{MAX_RECORDS_PER_CALL}")
    batch: list[bytes] = []
    size = 0
    for record in records:
        if len(record) > MAX_BYTES_PER_RECORD:
            raise ValueError(f"a record of {len(record)} bytes exceeds Firehose's {MAX_BYTES_PER_RECORD}-byte limit")
        if batch and (len(batch) == max_records or size + len(record) > MAX_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record)
    if batch:
        yield batch


def send_records(
    firehose,
    stream_name: str,
    records: Iterable[bytes],
    *,
    batch_size: int = MAX_RECORDS_PER_CALL,
    max_attempts: int = 8,
    on_progress: Callable[[int], None] = lambda accepted: None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendSummary:
    """Deliver every record at most once per success; failures after max_attempts are returned."""
    summary = SendSummary()
    for batch in batches(records, batch_size):
        pending = batch
        for attempt in range(1, max_attempts + 1):
            if attempt > 1:
                summary.retried += len(pending)
                # Exponential backoff with full jitter: 0.1 s, 0.2 s, ... capped at 5 s.
                sleep(random.uniform(0, min(5.0, 0.1 * 2 ** (attempt - 2))))
            summary.calls += 1
            try:
                response = firehose.put_record_batch(
                    DeliveryStreamName=stream_name, Records=[{"Data": data} for data in pending]
                )
            except ClientError as error:
                if error.response["Error"]["Code"] in RETRYABLE_CALL_ERRORS:
                    continue
                raise
            # Entries come back in request order; only those with an ErrorCode failed.
            failed = [data for data, entry in zip(pending, response["RequestResponses"]) if entry.get("ErrorCode")]
            accepted = len(pending) - len(failed)
            summary.sent += accepted
            on_progress(accepted)
            pending = failed
            if not pending:
                break
        summary.failed.extend(pending)
    return summary
