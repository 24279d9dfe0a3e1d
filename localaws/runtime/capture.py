"""Data capture of a real-time endpoint, as SageMaker writes it.

Sampled requests and answers become JSON lines (`captureData` with endpointInput and
endpointOutput, `eventMetadata`, `eventVersion`), kept in memory and written every
FLUSH_SECONDS (or FLUSH_LINES) to the endpoint config's S3 destination, one object per
variant and flush: <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-sss>-<uuid>.jsonl.
"""
from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from localaws.s3 import split_uri

FLUSH_SECONDS = 0.5
FLUSH_LINES = 500


@dataclass
class Capture:
    destination: str  # s3://bucket/prefix
    sampling_percent: float
    csv_types: set[str]
    json_types: set[str]
    modes: set[str]  # {"Input", "Output"}
    lines: list[tuple[datetime, str, str]] = field(default_factory=list)  # (when, variant, JSON line)
    last_flush: float = field(default_factory=time.monotonic)
    writing: threading.Lock = field(default_factory=threading.Lock)  # held by a flush from taking its lines to writing them
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards lines and last_flush

    @classmethod
    def from_config(cls, config: dict) -> Capture | None:
        """The capture a DescribeEndpointConfig reply asks for, or None."""
        capture = config.get("DataCaptureConfig") or {}
        if not capture.get("EnableCapture", False) or not capture.get("DestinationS3Uri"):
            return None
        header = capture.get("CaptureContentTypeHeader", {})
        return cls(
            destination=capture["DestinationS3Uri"],
            sampling_percent=float(capture.get("InitialSamplingPercentage", 100)),
            csv_types=set(header.get("CsvContentTypes", [])),
            json_types=set(header.get("JsonContentTypes", [])),
            modes={o["CaptureMode"] for o in capture.get("CaptureOptions", [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}])},
        )

    def record(self, variant: str, body: bytes, content_type: str, reply: bytes, reply_type: str) -> None:
        """One answered request, if sampled."""
        if random.uniform(0, 100) >= self.sampling_percent:
            return
        now = datetime.now(timezone.utc)
        data = {}
        if "Input" in self.modes:
            data["endpointInput"] = self._captured(body, content_type, "INPUT")
        if "Output" in self.modes:
            data["endpointOutput"] = self._captured(reply, reply_type, "OUTPUT")
        line = json.dumps({
            "captureData": data,
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"},
            "eventVersion": "0",
        })
        with self.lock:
            self.lines.append((now, variant, line))

    def flush(self, endpoint: str, s3: Callable[[], Any], force: bool = False) -> None:
        """Write the lines captured so far, if due (or `force`d), through the client `s3()` makes."""
        # One flush of a capture at a time, from taking its lines to writing them: a forced
        # flush that finds none left waits for the housekeeper's write in progress to land.
        with self.writing:
            with self.lock:
                due = force or len(self.lines) >= FLUSH_LINES or time.monotonic() - self.last_flush >= FLUSH_SECONDS
                if not due or not self.lines:
                    return
                lines, self.lines, self.last_flush = self.lines, [], time.monotonic()
            bucket, prefix = split_uri(self.destination)
            client = s3()
            for variant in dict.fromkeys(v for _, v, _ in lines):
                mine = [(when, line) for when, v, line in lines if v == variant]
                first = mine[0][0]
                # SageMaker's layout: <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-sss>-<uuid>.jsonl
                key = "/".join(p for p in (prefix.strip("/"), endpoint, variant, first.strftime("%Y/%m/%d/%H")) if p)
                key += f"/{first.strftime('%M-%S-')}{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
                client.put_object(Bucket=bucket, Key=key, Body="".join(line + "\n" for _, line in mine).encode())

    def _captured(self, payload: bytes, content_type: str, mode: str) -> dict:
        media_type = content_type.split(";")[0].strip()
        if media_type in self.csv_types:
            encoding, data = "CSV", payload.decode("utf-8", errors="replace")
        elif media_type in self.json_types:
            encoding, data = "JSON", payload.decode("utf-8", errors="replace")
        else:
            encoding, data = "BASE64", base64.b64encode(payload).decode()
        return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}
