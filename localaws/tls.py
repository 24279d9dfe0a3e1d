"""The local AWS's TLS listener: a certificate of its own for 127.0.0.1, made at start.

AWS is reached over TLS, and bucket policies test it (aws:SecureTransport). What acts as a
role (SageMaker's staging, the jobs' and endpoints' containers) calls this listener, with
the certificate as its CA bundle (AWS_CA_BUNDLE, which boto3 and the AWS CLI read); the
key lives only in the server's temporary directory.
"""
from __future__ import annotations

import datetime
import io
import ipaddress
import socket
import ssl
import traceback
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.moto_server.threaded_moto_server import MotoRequestHandler

from localaws.wsgi import call

CERTIFICATE_DAYS = 7
IDLE_SECONDS = 60


def server_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """(the listener's SSL context, the certificate file clients trust)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localaws")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certificate_file, key_file = directory / "localaws-ca.pem", directory / "localaws-key.pem"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate_file, key_file)
    return context, certificate_file


class QuietRequestHandler(MotoRequestHandler):
    """moto's handler without a log line per request (a lab run makes thousands), and with
    TCP_NODELAY: without it a TLS reply waits out the client's delayed ACK (40 ms a call)."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code="-", size="-") -> None:
        pass


class KeepAliveRequestHandler(QuietRequestHandler):
    """The TLS listener's handler: a client keeps its connection across calls, as with AWS,
    where a TLS handshake per call cost more than the call. werkzeug closes every connection
    (it drains a request by reading the socket to its end); here each request's body is read
    exactly (Content-Length, or chunked to its last chunk), the app's reply is sent with its
    length, and the connection stays open for the next request."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS  # an idle kept connection lets its thread go

    def run_wsgi(self) -> None:
        environ = self.make_environ()  # werkzeug's environ, with moto's header fix
        try:
            if environ.get("wsgi.input_terminated"):  # chunked: DechunkedInput stops at its end
                content = environ["wsgi.input"].read()
            else:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if length < 0:
                    raise ValueError(length)
                content = environ["wsgi.input"].read(length)
        except ValueError:  # a body that cannot be delimited: refuse it and close
            self.close_connection = True
            self.send_response(400, "Bad Request")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            return
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(content), str(len(content))
        # (a chunked request stays marked terminated: werkzeug then reads its stream to the end)
        try:
            status, headers, body = call(self.server.app, environ)
        except Exception:  # noqa: BLE001 - werkzeug's own answer to a crash, and a closed connection
            self.close_connection = True
            status, headers, body = "500 Internal Server Error", [("Content-Type", "text/plain")], b"local AWS: internal error"
            traceback.print_exc()
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        length = str(len(body))
        for key, value in headers:
            if key.lower() == "content-length":
                length = value if environ["REQUEST_METHOD"] == "HEAD" else length  # HEAD: the object's length
            elif key.lower() not in ("connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", length)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if environ["REQUEST_METHOD"] != "HEAD":
            self.wfile.write(body)
