"""Properties over generated damage: random bytes, bit flips and truncation of small seed
images only ever get 2xx, 400, 413, 415 or 422 with a JSON body, within a bounded amount of
memory; whatever is accepted ends in a final state (published, or failed with a reason)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from infra.devsetup import ensure_dev_files
from infra.errors import ApiError
from tests.faults.helpers import run_pipeline
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
            env={"PATH": "/usr/bin:/bin", "VAR_DIR": var, "LOG_LEVEL": "ERROR"},
            timeout=60,
        )
    assert done.stdout.decode().split() == ["JPEG", "GIF", "JPEG", "WEBP"], done.stderr[-2000:]
