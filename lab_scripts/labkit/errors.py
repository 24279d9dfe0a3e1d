"""Expected failures of a lab step, told in one line with what to do about it."""
from __future__ import annotations

import sys
from typing import Callable

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)


class LabError(Exception):
    """A condition the learner can fix; str() is the one line that says how."""


def explain(error: Exception) -> str | None:
    """One actionable line for AWS errors a learner commonly meets, else None."""
    if isinstance(error, LabError):
        return str(error)
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return "no AWS credentials: run `aws configure` (or `make local-up` and `source .localaws/env` to work offline)"
    if isinstance(error, NoRegionError):
        return "no AWS region: set AWS_REGION (e.g. export AWS_REGION=us-east-1) or run `aws configure`"
    if isinstance(error, (EndpointConnectionError, ConnectionClosedError)):
        return f"cannot reach {error.kwargs.get('endpoint_url')}: check AWS_ENDPOINT_URL / network (offline: `make local-up`)"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return "your AWS session token expired: log in again (e.g. `aws sso login`)"
        if code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"):
            return "AWS rejected your credentials: check the access key (`aws configure list`)"
        if code in ("AccessDenied", "AccessDeniedException"):
            return f"access denied for {error.operation_name}: your identity lacks this permission"
    return None


def run_step(main: Callable[[], int | None]) -> None:
    """Run a lab step's main(); expected failures print one line and exit 2."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the step, it picks up where it can", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - only explained errors are swallowed
        message = explain(error)
        if message is None:
            raise
        print(f"✗ {message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
