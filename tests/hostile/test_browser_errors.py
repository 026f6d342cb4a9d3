"""The frontend in a real browser (Debian's Chromium) sees our errors: a photo over the size limit
is a readable 413 with its JSON code, not "Failed to fetch" (the body-size middleware answered
before CORS ran, so the browser hid the answer)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.hostile import tokens

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGE = "<!doctype html><title>frontend</title><p>the frontend's origin</p>"


@pytest.fixture
def frontend(tmp_path: Path) -> Iterator[str]:
    """A page served from an origin of its own, as the frontend is."""
    (tmp_path / "index.html").write_text(PAGE)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FETCH = """async ([url, token, size]) => {
    try {
        const response = await fetch(url, {
            method: "POST",
            headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
            body: JSON.stringify({data: {image: "A".repeat(size)}}),
        });
        return {status: response.status, body: await response.json()};
    } catch (error) {
        return {error: String(error)};
    }
}"""


def test_the_frontend_reads_the_413_for_a_photo_over_the_limit(
    live_server: Any, chromium: Any, frontend: str, settings: Any
) -> None:
    settings.CORS_ALLOWED_ORIGINS = [frontend]
    settings.MAX_REQUEST_BYTES = 10_000
    page = chromium.new_page()
    page.goto(f"{frontend}/index.html")

    result = page.evaluate(FETCH, [f"{live_server.url}/api/v1/images/", tokens.sign(), 50_000])

    assert result == {
        "status": 413,
        "body": {"code": "payload_too_large", "error": result.get("body", {}).get("error")},
    }, result
