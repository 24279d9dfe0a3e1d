"""Faults the local AWS injects on request, to try what AWS does under load.

Firehose PutRecordBatch partial failure: AWS answers HTTP 200 with FailedPutCount > 0 and
an ErrorCode on each failed entry; a failed entry is not delivered, and the caller must
resend it. With `firehose_failure_fraction` set, each record of a call fails so, at random
(seeded: the same run fails the same way); the others reach moto and are delivered.
"""
from __future__ import annotations

import json
import random
import threading
from typing import Any, Callable, Iterable

from localaws.wsgi import call, json_reply

PUT_RECORD_BATCH = "Firehose_20150804.PutRecordBatch"
FAILED_ENTRY = {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down. (injected by the local AWS)"}


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self.firehose_failure_fraction = 0.0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def failing(self, count: int) -> list[bool]:
        with self._lock:
            return [self._random.random() < self.firehose_failure_fraction for _ in range(count)]


class FaultLayer:
    """WSGI middleware in front of moto: passes everything through unless a fault is set."""

    def __init__(self, app: Callable, faults: Faults) -> None:
        self.app, self.faults = app, faults

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not self.faults.firehose_failure_fraction or environ.get("HTTP_X_AMZ_TARGET") != PUT_RECORD_BATCH:
            return self.app(environ, start_response)
        request = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
        records = request.get("Records", [])
        failing = self.faults.failing(len(records))
        passed = [r for r, fails in zip(records, failing) if not fails]
        delivered: list[dict] = []
        if passed:
            status, headers, body = call(self.app, environ, json.dumps({**request, "Records": passed}).encode())
            if not status.startswith("200"):  # the call itself failed: that is moto's answer
                start_response(status, headers)
                return [body]
            delivered = json.loads(body)["RequestResponses"]
        replies = iter(delivered)
        merged = [dict(FAILED_ENTRY) if fails else next(replies) for fails in failing]
        return json_reply(start_response, {"FailedPutCount": sum(failing), "Encrypted": False, "RequestResponses": merged})

