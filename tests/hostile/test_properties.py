"""Properties over generated damage: random bytes, bit flips and truncation of small seed
images only ever get 2xx, 400, 413, 415 or 422 with a JSON body, within a bounded amount of
memory; whatever is accepted ends in a final state (published, or failed with a reason)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from rest_framework.test import APIClient

from infra.devsetup import ensure_dev_files
from infra.errors import ApiError
from tests.faults.helpers import run_pipeline
from tests.hostile import tokens
from tests.hostile.files import encode
from uploads.images import inspect_image
from uploads.models import Image

pytestmark = pytest.mark.django_db

ALLOWED_STATUSES = {200, 202, 400, 413, 415, 422}


@pytest.fixture(autouse=True)
def unthrottled(settings: Any) -> None:
    """Hundreds of uploads by one uploader: the rate limit is tested elsewhere."""
    settings.UPLOAD_RATE = "100000/min"


def bounded(examples: int) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Headroom over what the seeds themselves need: Pillow's buffers are not Python objects, so
# this is resident memory (peak RSS), not tracemalloc's count.
MEMORY_BOUND_MB = 100


@cache
def seeds() -> dict[str, bytes]:
    """Small but real files of every allowed format, with the structures damage can hit."""
    gradient = PILImage.linear_gradient("L").resize((48, 32)).convert("RGB")
    return {
        "jpeg": encode(gradient, "JPEG", quality=80),
        "progressive jpeg": encode(gradient, "JPEG", quality=80, progressive=True),
        "png": encode(gradient, "PNG"),
        "palette png": encode(gradient.quantize(16), "PNG"),
        "gif": encode(gradient.quantize(16), "GIF"),
        "animated gif": encode(
            gradient.quantize(16), "GIF", save_all=True, append_images=[gradient.quantize(8)]
        ),
        "webp": encode(gradient, "WEBP", quality=60),
        "heic": encode(gradient, "HEIF", quality=60),
    }


def peak_rss_mb(action: Callable[[], Any]) -> float:
    """Peak resident memory added while `action` runs (Linux: reset and read VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS counter here")
    before = _status_kb("VmRSS")
    action()
    return (_status_kb("VmHWM") - before) / 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def verdict(data: bytes) -> int:
    """What the validation says about `data`: 202 or the refusal's status. Anything else that
    escapes (a Pillow error we do not map) fails the property."""
    try:
        inspect_image(data, declared=None)
    except ApiError as exc:
        return exc.status_code
    return 202


def test_every_truncation_of_every_seed_is_accepted_or_refused_cleanly():
    for name, seed in seeds().items():
        statuses: set[int] = set()
        for end in range(len(seed) + 1):
            part = seed[:end]
            peak = peak_rss_mb(lambda part=part, statuses=statuses: statuses.add(verdict(part)))
            assert peak < MEMORY_BOUND_MB, (name, end, peak)
        assert statuses <= ALLOWED_STATUSES, (name, statuses)
        assert 202 in statuses, f"{name}: the whole seed is accepted"
        assert 422 in statuses, f"{name}: a cut is damage, not another format"


def flip(seed: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(seed)
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    return bytes(data)


damaged = st.sampled_from(sorted(seeds())).flatmap(
    lambda name: st.lists(
        st.tuples(st.integers(0, len(seeds()[name]) - 1), st.integers(0, 7)),
        min_size=1,
        max_size=6,
    ).map(lambda flips: flip(seeds()[name], flips))
)


def _scan_flips(name: str) -> st.SearchStrategy[bytes]:
    seed = seeds()[name]
    scan = seed.index(b"\xff\xda") + 14
    positions = st.integers(scan, len(seed) - 3)
    flips = st.lists(st.tuples(positions, st.integers(0, 7)), min_size=1, max_size=6)
    return flips.map(lambda chosen: flip(seed, chosen))


damaged_scans = st.sampled_from(["jpeg", "progressive jpeg"]).flatmap(_scan_flips)
magic = st.sampled_from(
    [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBP"]
)
noise = st.tuples(magic, st.binary(max_size=2048)).map(lambda parts: parts[0] + parts[1])


def upload(post: Any, data: bytes) -> Any:
    response = post({"data": {"image": base64.b64encode(data).decode()}})
    assert response.status_code in ALLOWED_STATUSES, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json"
    assert "code" in response.json() or "id" in response.json()
    return response


@bounded(120)
@given(data=damaged)
def test_bit_flipped_seeds_get_an_allowed_status_with_bounded_memory(post, data):
    peak = peak_rss_mb(lambda: upload(post, data))
    assert peak < MEMORY_BOUND_MB


@bounded(80)
@given(data=noise)
def test_random_bytes_get_an_allowed_status(post, data):
    upload(post, data)


@pytest.mark.slow
@bounded(25)
@given(data=damaged_scans)
def test_a_damaged_image_that_is_accepted_ends_in_a_final_state(post, data):
    response = upload(post, data)
    if response.status_code != 202:
        return
    image = run_pipeline(Image.objects.get(pk=response.json()["id"]))
    assert image.is_final, (image.state, image.failure_reason)
    if image.state == "failed":
        assert image.failure_reason


def test_a_small_webp_of_a_huge_canvas_is_checked_without_decoding_it():
    """45 KB that a full decode turns into ~380 MB: only parsed at upload (a regression)."""
    webp = encode(PILImage.new("RGB", (5000, 5000), (1, 2, 3)), "WEBP", quality=10)
    assert len(webp) < 100_000

    peak = peak_rss_mb(lambda: inspect_image(webp, declared=None))

    assert peak < MEMORY_BOUND_MB


def test_a_fresh_process_accepts_every_allowed_format_first():
    """A regression: only PNG's plugin was registered in a new process, so the first JPEG, GIF
    or WebP each web worker received was refused as 415."""
    import subprocess
    import sys
    import tempfile

    from tests.services import repo_root

    code = (
        "import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'imageservice.settings';"
        "django.setup(); import imageservice.urls;"
        "from uploads.images import inspect_image;"
        "print(inspect_image(sys.stdin.buffer.read(), declared=None).format);"
        "from PIL import Image; print(*sorted({'JPEG', 'GIF', 'WEBP'} & set(Image.OPEN)))"
    )
    with tempfile.TemporaryDirectory() as var:
        ensure_dev_files(Path(var))
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=encode(PILImage.new("RGB", (32, 32), "navy"), "JPEG"),
            capture_output=True,
            cwd=repo_root(),
            env={
                "PATH": "/usr/bin:/bin",
                "VAR_DIR": var,
                "ALLOW_DEV_SECRETS": "true",
                "LOG_LEVEL": "ERROR",
            },
            timeout=60,
        )
    assert done.stdout.decode().split() == ["JPEG", "GIF", "JPEG", "WEBP"], done.stderr[-2000:]


# --- Every field and header a client controls: never a 5xx ---------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
)
featured_values = st.one_of(
    json_values,
    st.tuples(st.datetimes(), offsets).map(lambda p: p[0].isoformat() + p[1]),
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2024-05-16"]),
)
content_types = st.sampled_from(
    [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/heic",
        "image/avif",
        "application/octet-stream",
        "text/html",
        "IMAGE/JPEG",
        "image/jpeg;charset=x",
        "",
    ]
) | st.text(max_size=30)
image_values = st.one_of(
    json_values,
    st.tuples(content_types, st.sampled_from(sorted(seeds()))).map(
        lambda p: f"data:{p[0]};base64,{base64.b64encode(seeds()[p[1]]).decode()}"
    ),
    st.sampled_from(sorted(seeds())).map(lambda name: base64.b64encode(seeds()[name]).decode()),
)
# Header values as a WSGI server passes them: latin-1 text.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=0xFF), max_size=80)
headers = st.fixed_dictionaries(
    {},
    optional={
        "HTTP_ORIGIN": st.sampled_from(["http://localhost:3000", "null"]) | header_text,
        "HTTP_X_REQUEST_ID": header_text,
        "HTTP_ACCEPT": header_text,
        "HTTP_ACCEPT_ENCODING": header_text,
        "HTTP_TRANSFER_ENCODING": st.sampled_from(["chunked", "gzip"]) | header_text,
        "HTTP_X_FORWARDED_FOR": header_text,
        "HTTP_X_FORWARDED_PROTO": st.sampled_from(["https", "http"]) | header_text,
        "HTTP_HOST": st.sampled_from(["imageservice.test", "evil.example"]) | header_text,
    },
)
authorizations = st.one_of(
    st.just("valid"),
    st.just("valid"),
    header_text,
    header_text.map(lambda text: f"Bearer {text}"),
)
request_content_types = (
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/x-www-form-urlencoded",
        ]
    )
    | header_text
)


def answered_cleanly(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:500])
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json", response.content[:200]
        assert "code" in response.json()


@bounded(150)
@given(
    image=image_values,
    fields=st.dictionaries(
        st.sampled_from(["name", "description", "featured", "extra"]), json_values, max_size=4
    ),
    featured=featured_values,
    authorization=authorizations,
    extra=headers,
    path=st.sampled_from(["/", "/api/v1/images/", "/api/v1/images"]),
)
def test_no_json_upload_answers_a_5xx(
    django_capture_on_commit_callbacks, broker, image, fields, featured, authorization, extra, path
):
    body = {"data": {"image": image, **fields, "featured": featured}}
    response = _send(
        django_capture_on_commit_callbacks,
        path,
        json.dumps(body),
        "application/json",
        authorization,
        extra,
    )
    answered_cleanly(response)


@bounded(80)
@given(
    body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
    content_type=request_content_types,
    authorization=authorizations,
    extra=headers,
)
def test_no_raw_body_with_any_content_type_answers_a_5xx(
    django_capture_on_commit_callbacks, broker, body, content_type, authorization, extra
):
    response = _send(
        django_capture_on_commit_callbacks, "/", body, content_type, authorization, extra
    )
    answered_cleanly(response)


@bounded(60)
@given(
    seed=st.sampled_from(sorted(seeds())),
    part_type=content_types,
    filename=header_text,
    fields=st.dictionaries(
        st.sampled_from(["name", "description", "featured"]), header_text, max_size=3
    ),
    extra=headers,
)
def test_no_multipart_upload_answers_a_5xx(
    django_capture_on_commit_callbacks, broker, seed, part_type, filename, fields, extra
):
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    # The image part written out by hand: Django's SimpleUploadedFile refuses names such as
    # "/" or ".." in the test itself, and those are what a hostile client sends.
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        + (f"Content-Type: {part_type}\r\n" if part_type else "")
        + "\r\n"
    ).encode("utf-8", "replace")
    body = part + seeds()[seed] + b"\r\n" + encode_multipart(BOUNDARY, fields)
    response = _send(
        django_capture_on_commit_callbacks,
        "/",
        body,
        MULTIPART_CONTENT,
        "valid",
        extra,
    )
    answered_cleanly(response)


@bounded(80)
@given(
    image_id=st.uuids().map(str) | header_text.filter(lambda t: "/" not in t and "?" not in t),
    authorization=authorizations,
    extra=headers,
)
def test_no_status_request_answers_a_5xx(image_id, authorization, extra):
    from urllib.parse import quote

    client = APIClient()
    auth = _authorization(authorization)
    response = client.get(f"/api/v1/images/{quote(image_id)}", **auth, **extra)
    assert response.status_code < 500, (response.status_code, response.content[:500])


def _authorization(authorization: str) -> dict[str, str]:
    if authorization == "valid":
        return {"HTTP_AUTHORIZATION": f"Bearer {tokens.sign()}"}
    return {"HTTP_AUTHORIZATION": authorization}


def _send(
    capture: Any, path: str, body: Any, content_type: str, authorization: str, extra: Any
) -> Any:
    client = APIClient()
    with capture(execute=True):
        return client.generic(
            "POST",
            path,
            body,
            content_type=content_type,
            **_authorization(authorization),
            **extra,
        )
