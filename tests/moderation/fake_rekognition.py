"""A small fake of Rekognition's DetectModerationLabels on loopback, so botocore's real retry,
timeout and error-parsing code runs against real HTTP.

Each request takes the next scripted reply (the last one repeats):
    "ok"                          -> 200 with `labels`
    "throttle"                    -> 400 ThrottlingException
    "500" / "503"                 -> InternalServerError / ServiceUnavailable-style 5xx
    "slow"                        -> answers "ok" after `delay` seconds (a read timeout)
    "hang"                        -> answers nothing until the fake is closed: longer than any
                                     client timeout however loaded the machine, with no clock race
    "InvalidImageFormatException" -> 400 with that error code (any other name too)
A request naming an S3Object is answered after reading that object from the S3 server, as
Rekognition would; what it read is kept in `s3_reads`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.services import free_port, s3_client


@dataclass
class FakeRekognition:
    url: str
    script: list[str] = field(default_factory=lambda: ["ok"])
    labels: list[dict[str, Any]] = field(default_factory=list)
    model_version: str = "7.0"
    delay: float = 1.0
    s3_endpoint: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    s3_reads: list[bytes] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)

    def next_reply(self) -> str:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def sent_bytes(self, index: int = -1) -> bytes:
        return base64.b64decode(self.requests[index]["Image"]["Bytes"])


def _handler(fake: FakeRekognition) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.headers["X-Amz-Target"] == "RekognitionService.DetectModerationLabels"
            fake.requests.append(body)
            reply = fake.next_reply()
            if reply == "hang":
                fake.closed.wait()
                return
            if reply == "slow":
                time.sleep(fake.delay)
                reply = "ok"
            if reply == "ok":
                self._answer(body)
            elif reply == "throttle":
                self._error(400, "ThrottlingException", "Rate exceeded")
            elif reply.isdigit():
                self._error(int(reply), "InternalServerError", "Internal server error")
            else:
                self._error(400, reply, f"Request has {reply}")

        def _answer(self, body: dict[str, Any]) -> None:
            s3_object = body["Image"].get("S3Object")
            if s3_object is not None:
                client = s3_client(fake.s3_endpoint)
                obj = client.get_object(Bucket=s3_object["Bucket"], Key=s3_object["Name"])
                fake.s3_reads.append(obj["Body"].read())
            labels = [x for x in fake.labels if x["Confidence"] >= body.get("MinConfidence", 50)]
            version = fake.model_version
            self._send(200, {"ModerationLabels": labels, "ModerationModelVersion": version})

        def _error(self, status: int, code: str, message: str) -> None:
            self._send(status, {"__type": code, "message": message})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)  # fails when the client gave up (a read timeout)

    return Handler


@contextmanager
def fake_rekognition(**options: Any) -> Iterator[FakeRekognition]:
    port = free_port()
    fake = FakeRekognition(url=f"http://127.0.0.1:{port}", **options)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.closed.set()
        server.shutdown()
        server.server_close()
