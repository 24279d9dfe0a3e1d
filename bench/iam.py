"""What IAM evaluation costs the local AWS: per request, and per call as a role sees it.

A role's S3 GetObject of an SSE-KMS object (s3:GetObject and kms:Decrypt authorized, the
bucket's TLS-only policy evaluated) over the TLS listener with its kept connection, against
the peer that is not evaluated: the administrator's same call over plain HTTP. The
authorization itself is timed in-process around Authorizer.authorize.

`python -m bench.iam` runs it alone (results.json is updated the same way).
"""
from __future__ import annotations

import json
import time

from bench.results import save
from localaws.iam.authorizer import Authorizer
from localaws.server import ACCOUNT_ID, LocalAws

CALLS = 500
BUCKET = "bench-iam"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def per_call_ms(call) -> float:
    call()  # the connection (and for TLS its handshake) is made once, as by a client that stays
    started = time.perf_counter()
    for _ in range(CALLS):
        call()
    return (time.perf_counter() - started) / CALLS * 1000


def run() -> dict[str, float]:
    with LocalAws() as local:
        admin = local.session()
        key = admin.client("kms").create_key()["KeyMetadata"]["Arn"]
        s3 = admin.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]})
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": [f"arn:aws:s3:::{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
        s3.put_object(Bucket=BUCKET, Key="in/object", Body=b"x" * 1024)
        iam = admin.client("iam")
        iam.create_role(RoleName="bench-iam", AssumeRolePolicyDocument=json.dumps(TRUST))
        iam.put_role_policy(RoleName="bench-iam", PolicyName="read", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/in/*"},
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}]}))
        role = local.as_role(f"arn:aws:iam::{ACCOUNT_ID}:role/bench-iam")[0].client("s3")

        spent, authorize = [0.0, 0], Authorizer.authorize

        def timed(self, call, token):
            started = time.perf_counter()
            authorize(self, call, token)
            spent[0] += time.perf_counter() - started
            spent[1] += 1

        Authorizer.authorize = timed
        try:
            role_ms = per_call_ms(lambda: role.get_object(Bucket=BUCKET, Key="in/object")["Body"].read())
        finally:
            Authorizer.authorize = authorize
        admin_ms = per_call_ms(lambda: s3.get_object(Bucket=BUCKET, Key="in/object")["Body"].read())
    return {
        "iam_authorize_us": spent[0] / spent[1] * 1e6,
        "iam_role_tls_get_object_ms": role_ms,
        "iam_admin_http_get_object_ms": admin_ms,
        "iam_role_over_admin_ratio": role_ms / admin_ms,
    }


if __name__ == "__main__":
    figures = run()
    for name, value in figures.items():
        print(f"{name:32s} {value:12,.3f}")
    save(figures)
