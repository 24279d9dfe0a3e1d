"""sagemaker-runtime's own endpoint: InvokeEndpoint over persistent HTTP/1.1 connections.

In AWS, InvokeEndpoint has a host of its own (runtime.sagemaker.<region>.amazonaws.com);
boto3 and the AWS CLI reach it here through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, which the
local AWS sets beside AWS_ENDPOINT_URL. Why a server of its own: moto's werkzeug server
closes every connection and serves each request on a new thread, which cost more than the
model itself (a new TCP connection and thread per invocation). Here a client keeps its
connection and its thread; the reply is the same (protocol.invoke_reply), and the shared
endpoint URL still answers InvokeEndpoint too.
"""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from localaws.runtime.endpoints import EndpointHost
from localaws.sagemaker.protocol import INVOKE_PATH, _error_reply, invoke_reply, region_of


class RuntimeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], endpoints: EndpointHost, account_id: str) -> None:
        super().__init__(address, _InvocationHandler)
        self.endpoints, self.account_id = endpoints, account_id
        self.thread = threading.Thread(target=self.serve_forever, name="localaws-runtime", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "RuntimeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _InvocationHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client's connection carries all its calls
    server: RuntimeServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without this, Nagle holds the body back
        # until the client's delayed ACK (up to 40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        invoked = INVOKE_PATH.match(self.path.split("?", 1)[0])
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():  # a body we cannot delimit would desynchronise the connection
            self.close_connection = True
            self._reply(*_error_reply(411, "LengthRequiredException", {"message": "InvokeEndpoint needs a Content-Length"}))
            return
        body = self.rfile.read(int(length))
        if invoked is None:
            self._reply(*_error_reply(404, "UnknownOperationException", {"message": f"no such sagemaker-runtime operation: POST {self.path}"}))
            return
        self._reply(*invoke_reply(
            self.server.endpoints, self.server.account_id, region_of(self.headers.get("Authorization", "")), invoked.group(1), body,
            self.headers.get("Content-Type", ""), self.headers.get("Accept", ""), self.headers.get("X-Amzn-SageMaker-Target-Variant", ""),
        ))

    def _reply(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for key, value in headers:
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # a lab run makes thousands of calls
