"""What an incoming request is, as IAM sees it: who signed it, which service and operation,
and its parameters.

The signer is the access key in the SigV4 Authorization header (or a presigned URL's
X-Amz-Credential) and the service its credential scope's signing name. JSON and query
protocols carry the operation by name; S3 (REST-XML) is routed from its method, path and
sub-resources (s3_actions.py).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from localaws.iam import s3_actions


class UnreadableRequest(Exception):
    """The request's operation cannot be told (the local AWS says so rather than guess)."""


@dataclass
class ApiCall:
    access_key: str
    region: str
    service: str  # the IAM prefix: s3, sagemaker, cloudwatch, ...
    operations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (IAM action, its parameters)
    protocol: str = "json"
    method: str = "POST"
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    session_token: str | None = None
    secure: bool = False  # it came over TLS (aws:SecureTransport)


# Signing names that are not the service's IAM prefix.
IAM_PREFIX = {"monitoring": "cloudwatch"}


def _credential(environ: dict[str, Any], query: dict[str, list[str]]) -> list[str] | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in header:
        return header.split("Credential=", 1)[1].split(",", 1)[0].strip().split("/")
    if "X-Amz-Credential" in query:  # a presigned URL
        return query["X-Amz-Credential"][0].split("/")
    return None


def body_of(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for the layers behind."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _flat_query(pairs: dict[str, list[str]]) -> dict[str, Any]:
    """Query-protocol parameters, list members (Names.member.1) gathered under their name."""
    params: dict[str, Any] = {}
    for name, values in pairs.items():
        base, _, rest = name.partition(".member.")
        if rest and "." not in rest:
            params.setdefault(base, []).append(values[0])
        else:
            params[name] = values[0]
    return params


def parse(environ: dict[str, Any]) -> ApiCall | None:
    """The call, or None for an unsigned request (moto's own /moto-api)."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    credential = _credential(environ, query)
    if credential is None or len(credential) < 4:
        return None
    access_key, region, signing = credential[0], credential[2], credential[3]
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    prefix = IAM_PREFIX.get(signing, signing)
    token = headers.get("x-amz-security-token") or (query.get("X-Amz-Security-Token") or [None])[0]
    call = ApiCall(access_key, region, prefix, method=environ.get("REQUEST_METHOD", ""), query=query, headers=headers, session_token=token,
                   secure=environ.get("wsgi.url_scheme") == "https")
    if signing == "s3":
        call.protocol = "rest-xml"
        body = body_of(environ) if environ.get("REQUEST_METHOD") == "POST" else b""
        # werkzeug's PATH_INFO is already percent-decoded, its bytes as latin-1: the key's UTF-8
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", errors="replace")
        call.operations = s3_actions.route(environ["REQUEST_METHOD"], path, query, headers, body)
        return call
    target = environ.get("HTTP_X_AMZ_TARGET")
    body = body_of(environ)
    if target:
        operation = target.rpartition(".")[2]
        try:
            call.operations = [(operation, json.loads(body or b"{}"))]
        except json.JSONDecodeError:
            raise UnreadableRequest(f"the body of {target} is not JSON") from None
        return call
    form = parse_qs(body.decode(), keep_blank_values=True) if body and "form-urlencoded" in headers.get("content-type", "") else {}
    params = _flat_query({**query, **form})
    if "Action" in params:
        call.protocol = "query"
        call.operations = [(params.pop("Action"), params)]
        return call
    raise UnreadableRequest(f"the local AWS cannot tell the operation of this {signing} request ({environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')})")
