"""A stand-in PinsterApi: a real HTTP server on loopback that checks every request the way
PinsterApi does, answers as the test commands, and remembers what it received.

    with PinsterApi() as pinster, override_settings(PINSTER_API_URL=pinster.url):
        pinster.answer(Reply(503, retry_after="120"), 500)  # the next two requests
        ...                                                 # then 201 Created
        assert pinster.delivered_event_ids() == [...]

Checks (401 when the token fails, 422 when the body does): RS256 only, with our public key
(var/keys/service_public.pem, the public half of settings.PRIVATE_KEYS[0]); `iss` is our URL,
`aud` is this server's URL; `exp` and `nbf` with 10 s leeway; both imageable claims present and
matching the body; `base_file_name` contained in `storage_location_uri`. `stop()` closes the
port (connection refused); `start()` opens it again on the same port.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from django.conf import settings

LEEWAY_SECONDS = 10
IMAGES_PATH = "/v1/images/"
REJECTIONS_PATH = "/v1/image_rejections/"
IMAGE_FIELDS = (
    "imageable_type",
    "imageable_id",
    "base_file_name",
    "storage_location_uri",
    "thumbnailable",
    "name",
    "description",
    "featured",
)
REJECTION_FIELDS = ("imageable_type", "imageable_id", "user_id", "reason", "labels")


@dataclass(frozen=True)
class Reply:
    """How to answer one request that passed the checks."""

    status: int = 201
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering: longer than the client's timeout = "slow"
    echo_token: bool = False  # a careless server that puts the caller's token in its error


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: Any
    token: str
    claims: dict[str, Any]
    errors: list[str]
    status: int = 0

    @property
    def event_id(self) -> str:
        return self.headers.get("idempotency-key", "")


def service_public_key() -> str:
    path = Path(settings.VAR_DIR) / "keys" / "service_public.pem"
    if path.exists():
        return path.read_text()
    private = serialization.load_pem_private_key(settings.PRIVATE_KEYS[0].encode(), None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class PinsterApi:
    public_key: str = field(default_factory=service_public_key)
    issuer: str = field(default_factory=lambda: settings.IMAGE_SERVICE_URL)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- Control -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rejections_url(self) -> str:
        return self.url + REJECTIONS_PATH

    def start(self) -> PinsterApi:
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: from now on a client's connection is refused."""
        if self._server is not None:
            self._stopping.set()  # wakes any slow answer in progress
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PinsterApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, *replies: Reply | int) -> None:
        """Queue answers for the next valid requests, in order; afterwards 201 Created."""
        with self._lock:
            self._replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    # --- What it saw ---------------------------------------------------------------------

    def delivered_event_ids(self) -> list[str]:
        """Event ids of the requests it accepted (2xx), one entry per accepted request."""
        with self._lock:
            return [r.event_id for r in self.received if 200 <= r.status < 300]

    def deliveries_per_event(self) -> Counter[str]:
        return Counter(self.delivered_event_ids())

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    # --- Inside the server ---------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else Reply()

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def check(self, path: str, token: str, body: Any) -> tuple[dict[str, Any], list[str], int]:
        """Verify a request as PinsterApi does; returns (claims, errors, status for errors)."""
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                audience=self.url,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            return {}, [f"token: {exc}"], 401
        errors = [f"token: no {c}" for c in ("imageable_type", "imageable_id") if not claims.get(c)]
        if errors:
            return claims, errors, 401
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return claims, ["body: no data object"], 422
        wanted = IMAGE_FIELDS if path == IMAGES_PATH else REJECTION_FIELDS
        errors = [f"data: {name} is missing" for name in wanted if name not in data]
        for claim in ("imageable_type", "imageable_id"):
            if data.get(claim) != claims[claim]:
                errors.append(f"data: {claim} does not match the token")
        if path == IMAGES_PATH and str(data.get("base_file_name") or "?") not in str(
            data.get("storage_location_uri")
        ):
            errors.append("data: base_file_name is not contained in storage_location_uri")
        return claims, errors, 422


def _handler_for(pinster: PinsterApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
            claims, errors, error_status = pinster.check(self.path, token, body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            received = Received(time.time(), self.path, headers, body, token, claims, errors)
            pinster._record(received)  # the status is filled in when it is answered
            if self.path not in (IMAGES_PATH, REJECTIONS_PATH):
                received.status = 404
                self._send(404, {"errors": ["not found"]})
            elif errors:
                received.status = error_status
                self._send(error_status, {"errors": errors})
            else:
                reply = pinster._next_reply()
                if reply.delay and pinster._stopping.wait(reply.delay):
                    return
                received.status = reply.status
                answer = {"data": {"id": headers.get("idempotency-key")}}
                if reply.echo_token:
                    answer = {"errors": [f"bad request with Authorization: {auth}"]}
                self._send(reply.status, answer, reply.retry_after)

        def _send(self, status: int, payload: Any, retry_after: str | None = None) -> None:
            data = json.dumps(payload).encode()
            with contextlib.suppress(OSError):  # the client gave up waiting: it timed out
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
