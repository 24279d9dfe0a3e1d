"""The clients the local AWS calls itself with: made once per service and region, shared."""
from __future__ import annotations

import threading
from typing import Any, Callable, Protocol


class ClientSource(Protocol):
    """What the local AWS's runners take clients from: a boto3 Session, or SharedClients."""

    def client(self, service_name: str) -> Any: ...


class SharedClients:
    """Clients made once and shared, where a fresh session and client for each call cost the
    local AWS more CPU than the calls (a capture flush made both twice a second). botocore
    clients are thread-safe; sessions are not, so the one session only makes clients, under
    the lock."""

    def __init__(self, make_session: Callable[[], Any]) -> None:
        self._make_session, self._session, self._clients = make_session, None, {}
        self._lock = threading.Lock()

    def client(self, service_name: str) -> Any:
        with self._lock:
            if service_name not in self._clients:
                self._session = self._session or self._make_session()
                self._clients[service_name] = self._session.client(service_name)
            return self._clients[service_name]
