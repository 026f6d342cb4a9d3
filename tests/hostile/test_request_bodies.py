"""Request bodies through a real gunicorn on loopback, where Django's test client cannot go: it
always sends a Content-Length.

Decided behaviour:
- a chunked body (Transfer-Encoding, no Content-Length) is a JSON 411 `length_required`, sent
  before reading any of it (Django would otherwise read such a body as empty and answer a
  misleading 400; the Pinster frontend always sends a Content-Length);
- a Content-Length over MAX_REQUEST_BYTES is a JSON 413 `payload_too_large`, sent before reading
  the body: the client gets its answer while it is still sending.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from infra.devsetup import ensure_dev_files
from tests.hostile import tokens
from tests.services import free_port, repo_root, wait_for_port

pytestmark = [pytest.mark.services, pytest.mark.slow]  # a gunicorn of its own


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """gunicorn with the project's config, on embedded defaults (SQLite, local files)."""
    var = tempfile.mkdtemp(prefix="bodies-")
    ensure_dev_files(Path(var))
    public_key = (Path(settings.VAR_DIR) / "keys" / "pinster_public.pem").read_bytes()
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VAR_DIR": var,
        "ALLOW_DEV_SECRETS": "true",
        "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
        "API_PUBLIC_KEY": base64.b64encode(public_key).decode(),
        "IMAGE_SERVICE_URL": settings.IMAGE_SERVICE_URL,
        "PINSTER_API_URL": settings.PINSTER_API_URL,
        "ALLOWED_HOSTS": "127.0.0.1",
        "EMBEDDED_WORKER_THREADS": "0",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "imageservice.wsgi", "-c", "gunicorn.conf.py"],
        cwd=repo_root(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield port
    finally:
        process.terminate()
        process.wait(15)
        shutil.rmtree(var, ignore_errors=True)


def head(port: int, extra: str) -> bytes:
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {tokens.sign()}\r\nContent-Type: application/json\r\n"
        f"{extra}\r\n"
    ).encode()


def exchange(port: int, request_head: bytes, body_parts: Iterator[bytes]) -> tuple[bytes, int]:
    """Send the head, then body parts until the server answers; (response, body bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request_head)
        for part in body_parts:
            if select.select([conn], [], [], 0)[0]:
                break  # the server answered before the body was complete
            try:
                conn.sendall(part)
            except OSError:
                break
            sent += len(part)
        return _read_response(conn), sent


def _read_response(conn: socket.socket) -> bytes:
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        body = data.partition(b"\r\n\r\n")[2]
        if body and (body.rstrip().endswith(b"}") or body.endswith(b"0\r\n\r\n")):
            break
    return data


def parse(response: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    if headers.get("Transfer-Encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return int(lines[0].split()[1]), headers, json.loads(body)


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + b"a" * size + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_small_chunked_body_is_a_json_411(server):
    body = json.dumps({"data": {"image": ""}}).encode()
    parts = iter([f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"])

    response, _ = exchange(server, head(server, "Transfer-Encoding: chunked\r\n"), parts)

    status, headers, payload = parse(response)
    assert status == 411
    assert headers["Content-Type"] == "application/json"
    assert payload["code"] == "length_required"


def test_an_endless_chunked_body_is_answered_before_it_is_read(server):
    response, sent = exchange(
        server, head(server, "Transfer-Encoding: chunked\r\n"), chunked(200 * 1024 * 1024)
    )

    status, _, payload = parse(response)
    assert (status, payload["code"]) == (411, "length_required")
    assert sent < 100 * 1024 * 1024


def test_a_content_length_over_the_limit_is_a_json_413_before_the_body_is_read(server):
    declared = settings.MAX_REQUEST_BYTES * 4
    parts = (b"a" * 65536 for _ in range(declared // 65536))
    started = time.monotonic()

    response, sent = exchange(server, head(server, f"Content-Length: {declared}\r\n"), parts)

    status, headers, payload = parse(response)
    assert (status, payload["code"]) == (413, "payload_too_large")
    assert headers["Content-Type"] == "application/json"
    assert sent < declared
    assert time.monotonic() - started < 10


def test_a_body_with_its_content_length_is_read_and_judged(server):
    """The control: the same server reads a body it can measure."""
    body = json.dumps({"data": {"image": ""}}).encode()
    request = head(server, f"Content-Length: {len(body)}\r\n")

    response, _ = exchange(server, request, iter([body]))

    status, _, payload = parse(response)
    assert (status, payload["code"]) == (400, "missing_fields")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/form-data; boundary*=bogus''x", (415, "unsupported_media_type")),
        ("application/json; charset*=bogus''x", (415, "unsupported_media_type")),
        ("application/json; charset*=utf-8''%ff%fe", (400, "missing_fields")),
    ],
)
def test_a_content_type_parameter_in_an_unknown_charset_is_a_json_answer(
    server, content_type, expected
):
    """RFC 2231 parameters Django cannot decode used to raise while it built the request,
    before any middleware: a bare 500 on every endpoint. Now a header that cannot be read is
    one the API does not support."""
    body = json.dumps({"data": {"image": ""}}).encode()
    request = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{server}\r\n"
        f"Authorization: Bearer {tokens.sign()}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    response, _ = exchange(server, request, iter([body]))

    status, headers, payload = parse(response)
    assert (status, payload["code"]) == expected
    assert headers["Content-Type"] == "application/json"
