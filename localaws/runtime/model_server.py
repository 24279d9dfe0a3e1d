"""The serving container, offline: `GET /ping` and `POST /invocations` on 127.0.0.1.

Run as its own process per endpoint (`python -m localaws.runtime.model_server --model-dir D`),
like a container: it loads the entry point packed in the model (D/code/$SAGEMAKER_PROGRAM),
calls model_fn once, then input_fn -> predict_fn -> output_fn per request, and answers
errors that carry a `status` with that status. It prints "READY <port>" when serving.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOOPBACK = "127.0.0.1"


def load_entry_point(model_dir: Path):
    code = model_dir / "code"
    program = os.environ.get("SAGEMAKER_PROGRAM", "inference.py")
    sys.path.insert(0, str(code))  # the entry point imports its neighbours (features.py)
    spec = importlib.util.spec_from_file_location(Path(program).stem, code / program)
    if spec is None or not (code / program).exists():
        raise SystemExit(f"no entry point {code / program} in the model artifact")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would (dataclasses look themselves up there)
    spec.loader.exec_module(module)
    return module


def make_handler(entry, model):
    class Invocations(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the runtime layer reuses connections

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle's algorithm meets
            # the client's delayed ACK and every answer waits ~40 ms.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._reply(200, b"", "text/plain")
            else:
                self._reply(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/invocations":
                self._reply(404, b"not found", "text/plain")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                data = entry.input_fn(body, self.headers.get("Content-Type", ""))
                reply, content_type = entry.output_fn(entry.predict_fn(data, model), self.headers.get("Accept", ""))
                self._reply(200, reply, content_type)
            except Exception as error:  # noqa: BLE001 - every failure becomes an HTTP answer
                status = getattr(error, "status", 500)
                if status >= 500:
                    traceback.print_exc()
                self._reply(status, json.dumps({"message": str(error)}).encode(), "application/json")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # one line per request would drown the lab's output
            pass

    return Invocations


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections under concurrent load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    entry = load_entry_point(args.model_dir)
    model = entry.model_fn(str(args.model_dir))
    server = ModelHTTPServer((LOOPBACK, args.port), make_handler(entry, model))
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
