"""IAM offline: a role's session is authorized request by request, as AWS authorizes it.

The lab's own roles pass the whole lab as synthesized (test_readme_by_hand); these tests pin
the evaluation itself: who is refused, which condition decides, what wins, and the words.
"""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from localaws.iam.authorizer import RoleNotAssumable
from localaws.iam.policy import Principal, PolicyError, Request, evaluate
from localaws.server import ACCOUNT_ID, LocalAws
from tests.helpers import SAGEMAKER_TRUST

BUCKET = "iam-tests"
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/iam-tests"
SESSION = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/iam-tests/SageMaker"
TLS_ONLY = {"Version": "2012-10-17", "Statement": [{
    "Sid": "TlsOnly", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def allow(action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


@pytest.fixture(scope="module")
def lab():
    """A local AWS with a bucket under the lab key (SSE-KMS by default, TLS-only policy) and a
    role SageMaker may assume that reads in/ and writes out/."""
    with LocalAws() as local:
        admin = local.session()
        key = admin.client("kms").create_key()["KeyMetadata"]["Arn"]
        s3 = admin.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]})
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(TLS_ONLY))
        s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"1,2\n")
        iam = admin.client("iam")
        iam.create_role(RoleName="iam-tests", AssumeRolePolicyDocument=json.dumps(SAGEMAKER_TRUST))
        iam.put_role_policy(RoleName="iam-tests", PolicyName="lab", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            allow("s3:GetObject", f"arn:aws:s3:::{BUCKET}/in/*"),
            allow("s3:PutObject", f"arn:aws:s3:::{BUCKET}/out/*"),
            allow("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", Condition={"StringLike": {"s3:prefix": ["in/*"]}}),
            allow(["kms:Decrypt", "kms:GenerateDataKey"], key),
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/out/forbidden/*"},
        ]}))
        role, environment = local.as_role(ROLE)
        yield local, role, environment, key


def smallest_job(name: str, role_arn: str) -> dict:
    """A CreateProcessingJob request that runs as `role_arn` and does nothing."""
    return {"ProcessingJobName": name, "RoleArn": role_arn,
            "AppSpecification": {"ImageUri": "img", "ContainerEntrypoint": ["python3", "-c", "pass"]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}}}


def refusal(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_what_the_role_allows_passes_and_what_it_does_not_is_refused_in_aws_words(lab):
    local, role, _, key = lab
    s3 = role.client("s3")
    assert s3.get_object(Bucket=BUCKET, Key="in/data.csv")["Body"].read() == b"1,2\n"  # kms:Decrypt too
    s3.put_object(Bucket=BUCKET, Key="out/result.csv", Body=b"ok")  # kms:GenerateDataKey too
    assert refusal(lambda: s3.get_object(Bucket=BUCKET, Key="out/result.csv")) == ("AccessDenied", (
        f'User: {SESSION} is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::{BUCKET}/out/result.csv" '
        "because no identity-based policy allows the s3:GetObject action"))
    assert refusal(lambda: role.client("sagemaker").list_training_jobs()) == ("AccessDeniedException", (
        f"User: {SESSION} is not authorized to perform: sagemaker:ListTrainingJobs on resource: * "
        "because no identity-based policy allows the sagemaker:ListTrainingJobs action"))
    assert local.iam.used[ROLE] >= {("s3:GetObject", f"arn:aws:s3:::{BUCKET}/in/data.csv"), ("kms:Decrypt", key),
                                    ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/out/result.csv")}


def test_an_explicit_deny_wins_over_an_allow(lab):
    _, role, _, _ = lab
    code, message = refusal(lambda: role.client("s3").put_object(Bucket=BUCKET, Key="out/forbidden/x", Body=b"no"))
    assert code == "AccessDenied" and message.endswith("with an explicit deny in an identity-based policy")


def test_a_condition_decides_both_ways(lab):
    """s3:prefix: listing in/ is allowed, listing out/ (or the whole bucket) is not."""
    _, role, _, _ = lab
    s3 = role.client("s3")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="in/")["Contents"]] == ["in/data.csv"]
    for prefix in ("out/", ""):
        assert refusal(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix))[0] == "AccessDenied"


def test_the_bucket_policy_sees_the_connection_as_it_is(lab):
    """aws:SecureTransport: the role's session over the TLS listener passes the TLS-only
    bucket policy; the same credentials over plain HTTP meet its explicit deny."""
    local, role, environment, _ = lab
    plain = local.session().client("s3", aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
                                   aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"], aws_session_token=environment["AWS_SESSION_TOKEN"])
    assert role.client("s3").get_object(Bucket=BUCKET, Key="in/data.csv")["Body"].read() == b"1,2\n"
    code, message = refusal(lambda: plain.get_object(Bucket=BUCKET, Key="in/data.csv"))
    assert code == "AccessDenied" and message.endswith("with an explicit deny in a resource-based policy")


def test_a_key_policy_that_does_not_delegate_to_iam_refuses_whatever_the_role_says(lab):
    local, role, _, _ = lab
    kms = local.session().client("kms")
    own = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/key-admin"}, "Action": "kms:*", "Resource": "*"}]}))["KeyMetadata"]["Arn"]
    local.session().client("iam").put_role_policy(RoleName="iam-tests", PolicyName="own-key", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("kms:GenerateDataKey", own)]}))
    code, message = refusal(lambda: role.client("kms").generate_data_key(KeyId=own, KeySpec="AES_256"))
    assert code == "AccessDeniedException" and message.endswith("because no resource-based policy allows the kms:GenerateDataKey action")


def test_a_foreign_key_is_not_a_principal(lab):
    local, _, _, _ = lab
    stranger = local.session().client("s3", aws_access_key_id="AKIAFOREIGN0000000000", aws_secret_access_key="x")
    assert refusal(lambda: stranger.get_object(Bucket=BUCKET, Key="in/data.csv"))[0] == "InvalidAccessKeyId"
    stranger = local.session().client("sagemaker", aws_access_key_id="AKIAFOREIGN0000000000", aws_secret_access_key="x")
    assert refusal(lambda: stranger.list_training_jobs())[0] == "UnrecognizedClientException"


def test_a_role_that_does_not_trust_the_service_is_refused_at_create(lab):
    local, _, _, _ = lab
    iam = local.session().client("iam")
    lambda_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    arn = iam.create_role(RoleName="not-for-sagemaker", AssumeRolePolicyDocument=json.dumps(lambda_only))["Role"]["Arn"]
    with pytest.raises(RoleNotAssumable):
        local.as_role(arn)
    code, message = refusal(lambda: local.session().client("sagemaker").create_processing_job(**smallest_job("untrusted", arn)))
    assert code == "ValidationException"
    assert message == (f"Could not assume role {arn}. Please ensure that the role exists and allows principal "
                       "'sagemaker.amazonaws.com' to assume the role.")


def test_passing_a_role_needs_iam_pass_role_for_that_service(lab):
    """The role may create jobs, but not hand them a role it may not pass."""
    local, role, _, _ = lab
    local.session().client("iam").put_role_policy(RoleName="iam-tests", PolicyName="jobs", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("sagemaker:CreateProcessingJob", "*")]}))
    code, message = refusal(lambda: role.client("sagemaker").create_processing_job(**smallest_job("passes-a-role", ROLE)))
    assert code == "AccessDeniedException"
    assert message == (f"User: {SESSION} is not authorized to perform: iam:PassRole on resource: {ROLE} "
                       "because no identity-based policy allows the iam:PassRole action")


# --- the evaluation of one statement, as the IAM User Guide's policy reference defines it ----

PRINCIPAL = Principal(SESSION, ACCOUNT_ID, role_arn=ROLE)


def verdict(statement: dict, action="s3:GetObject", resource="arn:aws:s3:::b/k", **context) -> str:
    request = Request(PRINCIPAL, action, resource, {k.lower().replace("__", ":"): v for k, v in context.items()})
    result = evaluate([("p", {"Statement": [{"Effect": "Allow", **statement}]})], request)
    return "allow" if result.allowed_by else "none"


@pytest.mark.parametrize("statement, context, expected", [
    ({"Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"}, {}, "allow"),
    ({"Action": "S3:getobject", "Resource": "arn:aws:s3:::b/k"}, {}, "allow"),  # actions ignore case
    ({"Action": "s3:GetObject", "Resource": "arn:aws:s3:::B/k"}, {}, "none"),  # resources do not
    ({"NotAction": "s3:Put*", "Resource": "*"}, {}, "allow"),
    ({"Action": "*", "NotResource": "arn:aws:s3:::b/*"}, {}, "none"),
    ({"Action": "*", "Resource": "arn:aws:s3:::b/${aws:PrincipalAccount}"}, {}, "none"),
    ({"Action": "*", "Resource": "arn:aws:s3:::b/k", "Condition": {"StringEquals": {"s3:prefix": "a"}}}, {}, "none"),  # key missing
    ({"Action": "*", "Resource": "*", "Condition": {"StringNotEquals": {"s3:prefix": "a"}}}, {}, "allow"),  # negated: missing matches
    ({"Action": "*", "Resource": "*", "Condition": {"StringEqualsIfExists": {"s3:prefix": "a"}}}, {}, "allow"),
    ({"Action": "*", "Resource": "*", "Condition": {"StringLike": {"s3:prefix": ["in/*", "code/*"]}}}, {"s3__prefix": ["code/x"]}, "allow"),
    ({"Action": "*", "Resource": "*", "Condition": {"Null": {"s3:prefix": "true"}}}, {"s3__prefix": ["x"]}, "none"),
    ({"Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}, {"aws__SecureTransport": ["true"]}, "allow"),
    ({"Action": "*", "Resource": "*", "Condition": {"NumericLessThan": {"s3:max-keys": "10"}}}, {"s3__max-keys": ["5"]}, "allow"),
    ({"Action": "*", "Resource": "*", "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:*:*:pipeline/*"}}},
     {"aws__SourceArn": ["arn:aws:sagemaker:us-east-1:1:pipeline/p"]}, "allow"),
    ({"Action": "*", "Resource": "*", "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}}, {"aws__TagKeys": ["a", "c"]}, "none"),
    ({"Action": "*", "Resource": "*", "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}}, {"aws__TagKeys": ["c", "b"]}, "allow"),
    ({"Action": "*", "Resource": "*", "Condition": {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a", "b"]}}}, {"aws__TagKeys": ["a", "c"]}, "allow"),
    ({"Action": "*", "Resource": "*", "Condition": {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a"]}}}, {}, "none"),  # no values: never
    ({"Action": "*", "Resource": "arn:aws:s3:::b/${aws:username}"}, {"aws__username": ["k"]}, "allow"),
])
def test_statement_elements_and_condition_operators(statement, context, expected):
    assert verdict(statement, **context) == expected


def test_an_operator_iam_does_not_define_is_an_error_not_a_guess():
    with pytest.raises(PolicyError, match="StringSortOf"):
        verdict({"Action": "*", "Resource": "*", "Condition": {"StringSortOf": {"s3:prefix": "a"}}}, s3__prefix=["a"])


def test_ec2_refuses_in_its_own_error_document(lab):
    _, role, _, _ = lab
    code, message = refusal(lambda: role.client("ec2").describe_subnets())
    assert code == "UnauthorizedOperation" and "ec2:DescribeSubnets on resource: *" in message


def test_the_tls_listener_keeps_bodies_whole_on_a_kept_connection(lab):
    """Over TLS botocore streams uploads aws-chunked (Transfer-Encoding: chunked); the
    listener keeps connections open, so each body must be read exactly: an upload, a
    download and a HEAD in a row on one connection all see the object whole."""
    local, role, _, _ = lab
    s3 = role.client("s3")
    body = bytes(range(256)) * 4096  # 1 MiB
    s3.put_object(Bucket=BUCKET, Key="out/whole.bin", Body=body)
    assert local.session().client("s3").get_object(Bucket=BUCKET, Key="out/whole.bin")["Body"].read() == body
    assert s3.head_object(Bucket=BUCKET, Key="in/data.csv")["ContentLength"] == 4
    assert s3.get_object(Bucket=BUCKET, Key="in/data.csv")["Body"].read() == b"1,2\n"


def test_a_session_may_assume_another_role_only_if_that_role_trusts_it(lab):
    """sts:AssumeRole by a role's session: the identity policy allowing it is not enough, the
    target's trust policy must name the role (or the account) too."""
    local, role, _, _ = lab
    iam = local.session().client("iam")
    iam.put_role_policy(RoleName="iam-tests", PolicyName="assume", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("sts:AssumeRole", "*")]}))
    target = iam.create_role(RoleName="sagemaker-only", AssumeRolePolicyDocument=json.dumps(SAGEMAKER_TRUST))["Role"]["Arn"]
    code, message = refusal(lambda: role.client("sts").assume_role(RoleArn=target, RoleSessionName="hop"))
    assert code == "AccessDenied" and "because no resource-based policy allows the sts:AssumeRole action" in message
    assert role.client("sts").get_caller_identity()["Arn"] == SESSION  # needs no permission


def test_a_sub_resource_the_local_aws_cannot_map_is_refused_not_waved_through(lab):
    _, role, _, _ = lab
    code, message = refusal(lambda: role.client("s3").get_bucket_cors(Bucket=BUCKET))
    assert code == "InvalidAction" and "?cors" in message
