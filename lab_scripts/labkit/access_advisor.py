"""What each of the lab's roles was granted and what it used, from IAM's last accessed
information (the console's Access Advisor tab: GenerateServiceLastAccessedDetails at
ACTION_LEVEL). A granted action nobody used is a candidate to remove (least privilege);
AWS tracks single actions for some services only, and the others count by service.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from labkit import polling

JOB_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class RoleUse:
    role: str
    services_granted: int
    services_used: int
    actions_granted: int  # of the services whose actions are tracked
    actions_used: int
    unused_services: tuple[str, ...]


def role_use(iam, role_arn: str) -> RoleUse:
    job = iam.generate_service_last_accessed_details(Arn=role_arn, Granularity="ACTION_LEVEL")["JobId"]
    deadline, waits = time.monotonic() + JOB_TIMEOUT_SECONDS, polling.intervals()
    while True:
        details = iam.get_service_last_accessed_details(JobId=job)
        if details["JobStatus"] != "IN_PROGRESS" or time.monotonic() > deadline:
            break
        time.sleep(next(waits))
    services = details.get("ServicesLastAccessed", [])
    tracked = [a for s in services for a in s.get("TrackedActionsLastAccessed", [])]
    return RoleUse(
        role_arn.rsplit("/", 1)[1],
        len(services), sum(1 for s in services if s.get("LastAuthenticated")),
        len(tracked), sum(1 for a in tracked if a.get("LastAccessedTime")),
        tuple(s["ServiceNamespace"] for s in services if not s.get("LastAuthenticated")),
    )
