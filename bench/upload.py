"""Upload cost against the raw work it cannot avoid, measured in the same run.

For a ~5 MB camera JPEG sent as base64 JSON and as multipart, prints the service's CPU time
per upload (process_time: steadier than wall time on a shared machine; the real WSGI
application called in-process with a prepared request: middleware, token check, validation,
local storage, SQLite; no client or network cost) as a ratio to the
raw work of that same body: for JSON, JSON parse + base64 decode + md5/sha256 + file write;
for multipart, md5/sha256 + file write of the file's bytes (there is nothing to decode).
Also the peak of the memory the service allocates per upload as a multiple of the payload
(tracemalloc, fresh process). Targets: JSON <= 1.2x its raw work, multipart <= 1.5x,
peak memory < 4x payload.

    .venv/bin/python bench/upload.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import binascii
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scratch_dir(prefix: str) -> str:
    """A temporary folder removed when the process ends (a run stores ~100 MB of photos)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def setup_django(var_dir: str) -> None:
    from infra.devsetup import ensure_dev_files

    ensure_dev_files(Path(var_dir))
    os.environ.update(
        {
            "VAR_DIR": var_dir,
            "ALLOW_DEV_SECRETS": "true",
            "DJANGO_SETTINGS_MODULE": "imageservice.settings",
            "LOG_LEVEL": "ERROR",
            "UPLOAD_RATE": "100000/min",
            "MAX_IMAGE_BYTES": str(16 * 1024 * 1024),
            "EMBEDDED_WORKER_THREADS": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
        }
    )
    for name in ("DATABASE_URL", "BUCKET_NAME", "BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def camera_jpeg() -> bytes:
    from tests.photos import photo

    return photo(4000, 3000, quality=95)


def variant(jpeg: bytes, n: int) -> bytes:
    """The same photo with a unique JPEG comment: new bytes, new md5, same decode cost."""
    comment = f"bench {n} {time.time_ns()}".encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return jpeg[:2] + segment + jpeg[2:]


def raw_work(body: bytes, out_dir: str) -> None:
    data = json.loads(body)["data"]["image"].split(",", 1)[1]
    # Strict, as the service decodes; straight from the str (base64.b64decode(validate=True)
    # would first copy it into bytes, ~0.7 ms more for this body).
    decoded = binascii.a2b_base64(data, strict_mode=True)
    md5 = hashlib.md5(decoded).hexdigest()
    hashlib.sha256(decoded).hexdigest()
    with open(os.path.join(out_dir, md5), "wb") as out:
        out.write(decoded)


def raw_multipart_work(jpeg: bytes, out_dir: str) -> None:
    md5 = hashlib.md5(jpeg).hexdigest()
    hashlib.sha256(jpeg).hexdigest()
    with open(os.path.join(out_dir, md5), "wb") as out:
        out.write(jpeg)


def json_body(jpeg: bytes) -> bytes:
    return json.dumps(
        {"data": {"image": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}}
    ).encode()


def token() -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("sign_upload_token", stdout=out)
    return out.getvalue().strip()


# The boundary Chromium's FormData sends ("----WebKitFormBoundary" and 16 random characters;
# Firefox, curl, OkHttp and URLSession send 36 to 70): what the web frontend sends. The service
# searches the image's bytes once for it, and a longer boundary is found faster. Django's test
# client sends 14 characters ("BoUnDaRyStRiNg"); its row is printed too.
BROWSER_BOUNDARY = "----WebKitFormBoundary" + "7MA4YWxkTrZu0gW3"
SHORT_BOUNDARY = "BoUnDaRyStRiNg"


def prepare(
    mode: str, jpeg: bytes, bearer: str, boundary: str = BROWSER_BOUNDARY
) -> tuple[bytes, dict[str, str]]:
    """The request as a browser would send it: its body and WSGI headers."""
    if mode == "json":
        body, content_type = json_body(jpeg), "application/json"
    else:
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.test.client import encode_multipart

        file = SimpleUploadedFile("photo.jpg", jpeg, content_type="image/jpeg")
        body = encode_multipart(boundary, {"image": file})
        content_type = f"multipart/form-data; boundary={boundary}"
    headers = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {bearer}",
        "wsgi.url_scheme": "http",
    }
    return body, headers


def send(app, body: bytes, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    import io

    environ = {**headers, "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr}
    status: list[str] = []
    chunks = app(environ, lambda s, h, exc_info=None: status.append(s))
    answer = b"".join(chunks)
    assert status[0].startswith("202"), (status, answer[:300])


def timing(rounds: int) -> None:
    var_dir = scratch_dir("bench-upload-")
    setup_django(var_dir)
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    jpeg, bearer = camera_jpeg(), token()
    out_dir = scratch_dir("bench-raw-")
    print(f"payload: {len(jpeg) / 1e6:.2f} MB JPEG, {len(json_body(jpeg)) / 1e6:.2f} MB as JSON")
    send(app, *prepare("json", variant(jpeg, -1), bearer))  # warm up imports and caches
    results: dict[str, list[float]] = {
        "raw json": [],
        "raw multipart": [],
        "json": [],
        "multipart": [],
        "multipart short boundary": [],
    }
    boundaries = {"multipart": BROWSER_BOUNDARY, "multipart short boundary": SHORT_BOUNDARY}
    for n in range(rounds):  # interleaved, so machine noise hits every row alike
        photo = variant(jpeg, n)
        body = json_body(photo)
        start = time.process_time()
        raw_work(body, out_dir)
        results["raw json"].append(time.process_time() - start)
        file = variant(jpeg, n + 10**6)  # made before the clock starts, as the bodies are
        start = time.process_time()
        raw_multipart_work(file, out_dir)
        results["raw multipart"].append(time.process_time() - start)
        for i, row in enumerate(("json", "multipart", "multipart short boundary")):
            mode = row.split()[0]
            photo = variant(jpeg, n * 10 + i)
            request = prepare(mode, photo, bearer, boundaries.get(row, BROWSER_BOUNDARY))
            start = time.process_time()
            send(app, *request)
            results[row].append(time.process_time() - start)
    medians = {name: statistics.median(times) for name, times in results.items()}
    print(
        f"medians of {rounds}, ms: " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in medians.items())
    )
    print(f"multipart/raw: {medians['multipart'] / medians['raw multipart']:.2f}")
    print(f"json/raw: {medians['json'] / medians['raw json']:.2f}")
    short = medians["multipart short boundary"] / medians["raw multipart"]
    print(f"multipart/raw with a 14-character boundary (Django's test client): {short:.2f}")
    print("(targets: multipart <= 1.5, json <= 1.2)")


def memory(mode: str) -> None:
    """Run in a fresh process: RSS growth and tracemalloc peak for one upload."""
    import tracemalloc

    setup_django(scratch_dir("bench-upload-mem-"))
    from django.core.wsgi import get_wsgi_application

    from tests.photos import photo

    app = get_wsgi_application()
    jpeg, bearer = camera_jpeg(), token()
    send(app, *prepare(mode, photo(640, 480), bearer))  # warm up every code path
    body, headers = prepare(mode, variant(jpeg, 0), bearer)
    tracemalloc.start()
    send(app, body, headers)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"payload": len(jpeg), "traced_peak": peak}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--memory", choices=["json", "multipart"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        memory(args.memory)
        return
    timing(args.rounds)
    for mode in ("json", "multipart"):
        out = subprocess.run(
            [sys.executable, __file__, "--memory", mode], capture_output=True, text=True, check=True
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = m["traced_peak"] / m["payload"]
        print(f"{mode:9s} peak memory per upload: {ratio:.2f}x the payload  (target < 4x)")


if __name__ == "__main__":
    main()
