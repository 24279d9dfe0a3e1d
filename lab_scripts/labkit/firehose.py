"""Send records to Kinesis Data Firehose in batches, retrying only the records that failed.

PutRecordBatch is not all-or-nothing: it can return HTTP 200 with FailedPutCount > 0,
and the caller must resend exactly the failed entries (in order) or lose them. That is
the bug the hands-on article's loop of put_record calls never meets, and an exam topic.
A batch still failing after every attempt means the stream is unhealthy: sending stops
there, and the caller learns which records were accepted (to resume without resending).
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
    unsent: int = 0  # records never tried: sending stopped at the batch that failed


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
    on_accepted: Callable[[list[int]], None] = lambda indices: None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendSummary:
    """Deliver every record at most once per success. `on_accepted` gets the input positions
    of the records each call got accepted; failures after max_attempts are returned and the
    records after them counted as unsent."""
    summary, offset = SendSummary(), 0
    all_batches = batches(records, batch_size)
    for batch in all_batches:
        pending = list(enumerate(batch, start=offset))
        offset += len(batch)
        for attempt in range(1, max_attempts + 1):
            if attempt > 1:
                summary.retried += len(pending)
                # Exponential backoff with full jitter: 0.1 s, 0.2 s, ... capped at 5 s.
                sleep(random.uniform(0, min(5.0, 0.1 * 2 ** (attempt - 2))))
            summary.calls += 1
            try:
                response = firehose.put_record_batch(
                    DeliveryStreamName=stream_name, Records=[{"Data": data} for _, data in pending]
                )
            except ClientError as error:
                if error.response["Error"]["Code"] in RETRYABLE_CALL_ERRORS:
                    continue
                raise
            # Entries come back in request order; only those with an ErrorCode failed.
            outcome = list(zip(pending, response["RequestResponses"]))
            accepted = [index for (index, _), entry in outcome if not entry.get("ErrorCode")]
            summary.sent += len(accepted)
            on_accepted(accepted)
            pending = [item for item, entry in outcome if entry.get("ErrorCode")]
            if not pending:
                break
        if pending:
            summary.failed.extend(data for _, data in pending)
            summary.unsent = sum(len(rest) for rest in all_batches)
            break
    return summary
