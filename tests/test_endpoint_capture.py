"""Data capture's flush: once flush_all returns, every request captured before it is in S3."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from localaws.runtime.capture import Capture
from localaws.runtime.endpoints import EndpointHost, HostedEndpoint


class SlowS3:
    """An S3 whose writes take `seconds` (a loaded machine's), counting the lines that landed."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.writing, self.landed = seconds, threading.Event(), 0

    def client(self, service: str) -> SlowS3:
        return self

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803 - boto3's names
        self.writing.set()
        time.sleep(self.seconds)
        self.landed += Body.count(b"\n")


def test_flush_all_returns_after_the_housekeepers_write_in_progress_has_landed():
    """Regression: the housekeeper took the captured lines, then wrote them outside the lock; a
    flush_all meanwhile found none to take and returned before they landed, so a count right
    after it missed them and the next test's count took them (212 of 200 shadow copies)."""
    s3 = SlowS3(seconds=1.0)
    host = EndpointHost(lambda region: s3, lambda role_arn, region: (s3, {}))
    capture = Capture("s3://bucket/capture", 100.0, set(), set(), {"Input"})
    capture.lines = [(datetime.now(timezone.utc), "AllTraffic", "{}")] * 7
    host._endpoints[("us-east-1", "ep")] = HostedEndpoint("ep", [], [], capture, lambda: s3)
    assert s3.writing.wait(timeout=10), "the housekeeper never flushed the capture"
    host.flush_all()
    assert s3.landed == 7
