"""Calling the app behind a layer of the local AWS in-process, and answering in AWS's JSON
protocol: what the SageMaker layer and the fault layer both do in front of moto."""
from __future__ import annotations

import io
import json
from typing import Any, Callable


def call(app: Callable, environ: dict[str, Any], body: bytes | None = None) -> tuple[str, list, bytes]:
    """(status line, headers, body) of `app` for this request, its body replaced by `body` if given."""
    if body is not None:
        environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    captured: dict[str, Any] = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    chunks = app(environ, capture)
    try:
        reply = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return captured["status"], captured["headers"], reply


def json_reply(start_response: Callable, document: dict) -> list[bytes]:
    """200 with `document` as an AWS JSON-protocol reply."""
    body = json.dumps(document).encode()
    start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))])
    return [body]
