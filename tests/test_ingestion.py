"""Firehose ingestion: batching limits, partial failures retried, nothing lost or duplicated."""
from __future__ import annotations

import gzip
import json

import pytest
from botocore.exceptions import ClientError

from labkit.firehose import MAX_BYTES_PER_CALL, batches, send_records
from labkit.landed import read_landed
from processing.records import decode_object

SKIP_SLEEP = lambda seconds: None  # noqa: E731 - tests never wait on backoff


def records(prefix: str, count: int) -> list[bytes]:
    return [json.dumps({"transaction_id": f"{prefix}-{i:05d}", "amount": i}).encode() + b"\n" for i in range(count)]


class FlakyFirehose:
    """The real (local) Firehose, except that chosen records fail as under throttling:
    HTTP 200 with FailedPutCount > 0 and an ErrorCode on those entries only."""

    def __init__(self, firehose, unlucky: list[bytes], fail_first_attempts: int, throttle_calls: int = 0) -> None:
        self.firehose, self.unlucky, self.throttle_calls = firehose, set(unlucky), throttle_calls
        self.attempts: dict[bytes, int] = {}
        self.fail_first_attempts = fail_first_attempts
        self.calls = 0

    def put_record_batch(self, DeliveryStreamName, Records):
        self.calls += 1
        if self.calls <= self.throttle_calls:
            raise ClientError({"Error": {"Code": "ServiceUnavailableException", "Message": "Slow down."}}, "PutRecordBatch")
        passed, responses = [], []
        for record in Records:
            seen = self.attempts.get(record["Data"], 0)
            self.attempts[record["Data"]] = seen + 1
            if record["Data"] in self.unlucky and seen < self.fail_first_attempts:
                responses.append({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
            else:
                passed.append(record)
                responses.append(None)
        delivered = iter(self.firehose.put_record_batch(DeliveryStreamName=DeliveryStreamName, Records=passed)["RequestResponses"]) if passed else iter(())
        merged = [r if r is not None else next(delivered) for r in responses]
        return {"FailedPutCount": sum(1 for r in merged if "ErrorCode" in r), "RequestResponses": merged}


def landed_ids(session, outputs, prefix: str):
    landed = read_landed(session.client("s3"), outputs["LabBucketName"], outputs["RawPrefix"])
    return {tid: n for tid, n in landed.transaction_ids.items() if tid.startswith(prefix)}


def test_batches_respect_count_and_size_limits():
    small = list(batches(records("a", 1234)))
    assert [len(b) for b in small] == [500, 500, 234]
    big = [b"x" * 900_000 + b"\n"] * 10
    grouped = list(batches(big))
    assert all(sum(map(len, group)) <= MAX_BYTES_PER_CALL for group in grouped)
    assert sum(map(len, grouped)) == 10
    with pytest.raises(ValueError, match="exceeds"):
        list(batches([b"x" * 1_100_000]))
    with pytest.raises(ValueError):
        list(batches([b"x"], max_records=501))


def test_partial_failures_are_resent_until_nothing_is_lost_or_duplicated(local_aws, outputs):
    server, _ = local_aws
    session = server.session()
    sent = records("partial", 1_200)
    flaky = FlakyFirehose(session.client("firehose"), unlucky=sent[::3], fail_first_attempts=2)
    summary = send_records(flaky, outputs["DeliveryStreamName"], sent, sleep=SKIP_SLEEP)
    assert (summary.sent, len(summary.failed)) == (1_200, 0)
    assert summary.retried == 2 * 400  # every third record failed twice
    ids = landed_ids(session, outputs, "partial")
    assert len(ids) == 1_200 and set(ids.values()) == {1}


def test_throttled_calls_are_retried_whole(local_aws, outputs):
    server, _ = local_aws
    session = server.session()
    flaky = FlakyFirehose(session.client("firehose"), unlucky=[], fail_first_attempts=0, throttle_calls=2)
    summary = send_records(flaky, outputs["DeliveryStreamName"], records("throttled", 300), sleep=SKIP_SLEEP)
    assert (summary.sent, summary.retried, len(summary.failed)) == (300, 600, 0)
    assert len(landed_ids(session, outputs, "throttled")) == 300


def test_records_that_never_get_through_are_returned_not_dropped(local_aws, outputs):
    server, _ = local_aws
    session = server.session()
    sent = records("stubborn", 100)
    flaky = FlakyFirehose(session.client("firehose"), unlucky=sent[::10], fail_first_attempts=99)
    summary = send_records(flaky, outputs["DeliveryStreamName"], sent, max_attempts=3, sleep=SKIP_SLEEP)
    assert summary.sent == 90
    assert summary.failed == sent[::10]
    assert len(landed_ids(session, outputs, "stubborn")) == 90


def test_other_errors_are_not_retried(local_aws):
    server, _ = local_aws
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        send_records(server.session().client("firehose"), "no-such-stream", records("x", 3), sleep=SKIP_SLEEP)


def test_objects_are_read_gzip_aware_by_magic_bytes():
    lines = b'{"transaction_id":"a"}\n{"transaction_id":"b"}\n'
    assert decode_object(lines) == ['{"transaction_id":"a"}', '{"transaction_id":"b"}']
    assert decode_object(gzip.compress(lines)) == decode_object(lines)


def test_local_firehose_delivers_gzip_into_date_partitions(local_aws, outputs):
    server, _ = local_aws
    session = server.session()
    send_records(session.client("firehose"), outputs["DeliveryStreamName"], records("partitioned", 10), sleep=SKIP_SLEEP)
    s3 = session.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=outputs["LabBucketName"], Prefix=outputs["RawPrefix"])["Contents"]]
    newest = max(keys)
    partition = newest[len(outputs["RawPrefix"]):].split("/")
    assert len(partition) == 5 and all(part.isdigit() for part in partition[:4])
    assert newest.endswith(".gz")
    assert s3.get_object(Bucket=outputs["LabBucketName"], Key=newest)["Body"].read()[:2] == b"\x1f\x8b"
