"""Thumbnail benchmark: our engine against a competent Pillow pipeline, pyvips and Thumbor.

    .venv/bin/python bench/thumbnails.py [--rounds 3] [--requests 10] [--no-thumbor]
                                         [--thumbor PATH] [--no-service] [--only-on-demand]

Each variant runs in a fresh subprocess so its peak RSS (VmHWM) is its own. CPU is
time.process_time() per image (median of the rounds, best of two interleaved runs); these
machines are noisy, so read the ratios, not the absolute times. "competent" is what a good
engineer writes with Pillow: one draft() decode at the scale of the largest output and a
Lanczos cascade; for the publishing set it re-encodes the original. "pyvips" does the same
with libvips (shrink-on-load, lanczos3 cascade, one thread; skipped if pyvips or libvips is
missing). All use the engine's encoder settings. Quality is scored on smooth photos and on a
detailed, textured one (tests/textured.py). The last lines print the targets:
`ours/competent cpu (full set)`, `ours/competent cpu (4 jpeg)`, `psnr 400px min over photos`.
Thumbor is installed with pip into a scratch venv (var/bench-venv) unless --thumbor names
one, never into the project. Our on-demand endpoint is timed over HTTP against Thumbor on the
same photo: the bench starts the service itself (`manage.py serve` on a loopback port, a
fresh VAR_DIR, local storage), uploads the photo with a development token and waits until it
is published. It does so twice: with the default THUMBNAIL_SIZES, where a 400 px size is made
from the published 800 px thumbnail as in production, and with only 100x100, so every
on-demand size is decoded from the 12 MP original as Thumbor does.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from publishing import imaging, thumbnails  # noqa: E402

SIZES = thumbnails.parse_sizes("100x100,400x400,800x800,1600x1600")
# The default THUMBNAIL_SIZES and what publishing makes of them: the original's copy (capped
# at PUBLIC_ORIGINAL_MAX_SIDE) and every size as JPEG and WebP.
FULL_SET = thumbnails.parse_sizes("100x100,400x400,800x800,1600x1600,400xauto")
ORIGINAL_MAX_SIDE = 4096
LANCZOS = Image.Resampling.LANCZOS


def ours(data: bytes) -> list[bytes]:
    return [r.data for r in thumbnails.render_thumbnails(data, SIZES, formats=("JPEG",))]


def ours_publish(data: bytes) -> list[bytes]:
    renditions = thumbnails.render_thumbnails(
        data, FULL_SET, include_original=True, original_max_side=ORIGINAL_MAX_SIDE
    )
    return [r.data for r in renditions]


def _encode(img: Image.Image, fmt: str) -> bytes:
    # The engine's encoder settings (quality, WebP method by size), so that the ratios
    # compare pipelines, not encoder settings.
    out = io.BytesIO()
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=85)
    else:
        img.save(out, "WEBP", quality=80, method=thumbnails.webp_method_for(*img.size))
    return out.getvalue()


def _cascade(
    img: Image.Image, sizes: list[thumbnails.Size], formats: tuple[str, ...]
) -> list[bytes]:
    out = []
    full = img.size
    for target in sorted((size.fit(*full) for size in sizes), key=lambda t: -t[0] * t[1]):
        if img.size != target:
            img = img.resize(target, LANCZOS)
        out += [_encode(img, fmt) for fmt in formats]
    return out


def _competent_open(data: bytes, largest: tuple[int, int] | None) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    if largest is not None:
        img.draft("RGB", largest)
    img = ImageOps.exif_transpose(img, in_place=False) if img.getexif().get(0x0112, 1) != 1 else img
    return img if img.mode == "RGB" else img.convert("RGB")


def competent(data: bytes) -> list[bytes]:
    """What a good engineer writes with Pillow: one draft decode at the scale of the largest
    size, then a Lanczos cascade, each size from the previous one."""
    with Image.open(io.BytesIO(data)) as probe:
        largest = max((s.fit(*probe.size) for s in SIZES), key=lambda t: t[0] * t[1])
    return _cascade(_competent_open(data, largest), SIZES, ("JPEG",))


def competent_publish(data: bytes) -> list[bytes]:
    """The same for the publishing set: the original re-encoded (so a full decode), then the
    cascade, JPEG and WebP of every size."""
    img = _competent_open(data, None)
    img.load()
    if max(img.size) > ORIGINAL_MAX_SIDE:
        img = img.resize(
            thumbnails.Size(ORIGINAL_MAX_SIDE, ORIGINAL_MAX_SIDE).fit(*img.size), LANCZOS
        )
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return [out.getvalue(), *_cascade(img, FULL_SET, ("JPEG", "WEBP"))]


def _vips_cascade(img, sizes, formats):  # type: ignore[no-untyped-def]
    out = []
    full = (img.width, img.height)
    for target in sorted((size.fit(*full) for size in sizes), key=lambda t: -t[0] * t[1]):
        if (img.width, img.height) != target:
            scale = target[0] / img.width
            img = img.resize(scale, vscale=target[1] / img.height, kernel="lanczos3")
            img = img.copy_memory()  # computed once: the smaller sizes start from it
        for fmt in formats:
            if fmt == "JPEG":
                out.append(img.jpegsave_buffer(Q=85, strip=True))
            else:
                effort = thumbnails.webp_method_for(img.width, img.height)
                out.append(img.webpsave_buffer(Q=80, effort=effort, strip=True))
    return out


def pyvips_ours(data: bytes) -> list[bytes]:
    """pyvips: shrink-on-load to the largest size (thumbnail_buffer), then a lanczos3 cascade."""
    import pyvips

    first = pyvips.Image.thumbnail_buffer(data, 1600, height=1600)
    return _vips_cascade(first.copy_memory(), SIZES, ("JPEG",))


def pyvips_publish(data: bytes) -> list[bytes]:
    import pyvips

    img = pyvips.Image.new_from_buffer(data, "").autorot().copy_memory()
    original = img.jpegsave_buffer(Q=90, strip=True)
    return [original, *_vips_cascade(img, FULL_SET, ("JPEG", "WEBP"))]


VARIANTS: dict[str, Callable[[bytes], list[bytes]]] = {
    "ours": ours,
    "competent": competent,
    "pyvips": pyvips_ours,
    "ours publish": ours_publish,
    "competent publish": competent_publish,
    "pyvips publish": pyvips_publish,
}


def memory_mb(field: str) -> float:
    # Not getrusage's ru_maxrss: Linux carries it across exec, so a child would report the
    # parent's peak. VmHWM belongs to this process's own address space.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(variant: str, path: str, rounds: int) -> None:
    """Runs in the subprocess: time one variant on one file, report JSON on stdout."""
    data = Path(path).read_bytes()
    render = VARIANTS[variant]
    baseline = memory_mb("VmHWM")
    render(data)  # warm-up: lazy imports, libjpeg/libwebp tables
    times = []
    for _ in range(rounds):
        start = time.process_time()
        render(data)
        times.append(time.process_time() - start)
    peak = memory_mb("VmHWM")
    print(json.dumps({"cpu": statistics.median(times), "peak": peak, "base": baseline}))


def measure(variant: str, path: Path, rounds: int) -> dict[str, float] | None:
    cmd = [sys.executable, __file__, "--worker", variant, str(path), str(rounds)]
    # libvips would spread one image over threads; the CPU is what we compare, so one thread.
    env = {**os.environ, "VIPS_CONCURRENCY": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0:
        print(f"  {variant} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout)


def build_inputs(workdir: Path) -> dict[str, Path]:
    from tests import photos
    from tests.textured import textured

    made = {
        "12MP JPEG": ("p12.jpg", photos.photo(4000, 3000)),
        "12MP textured": ("t12.jpg", textured()),
        "3MP JPEG": ("p3.jpg", photos.photo(2000, 1500, subject="coffee")),
        "6MP PNG": ("p6.png", photos.photo(3000, 2000, fmt="PNG", subject="chelsea")),
        "3MP HEIC": ("p3.heic", photos.heic(2000, 1500, subject="rocket")),
    }
    paths = {}
    for label, (name, data) in made.items():
        paths[label] = workdir / name
        paths[label].write_bytes(data)
    return paths


def speed_table(paths: dict[str, Path], rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    print("\n## CPU per image: 4 JPEG sizes (100, 400, 800, 1600), and the publishing set")
    print("(original copy + 5 sizes in JPEG and WebP); ours/x: our CPU over the variant's")
    print(f"{'input':13} {'variant':18} {'CPU ms':>8} {'ours/x':>7} {'peak RSS MB':>11} "
          f"{'above start':>11}")  # fmt: skip
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label in ("12MP JPEG", "12MP textured"):
        path = paths[label]
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for _ in range(2):  # interleaved, so a noisy neighbour hurts every variant alike
            for variant in VARIANTS:
                measured = measure(variant, path, rounds)
                if measured is not None:
                    runs[variant].append(measured)
        best = {v: min(r, key=lambda m: m["cpu"]) for v, r in runs.items() if r}
        results[label] = best
        for variant, m in best.items():
            mine = best["ours publish" if "publish" in variant else "ours"]["cpu"]
            print(f"{label:13} {variant:18} {m['cpu'] * 1e3:8.1f} {mine / m['cpu']:7.2f} "
                  f"{m['peak']:11.0f} {m['peak'] - m['base']:11.0f}")  # fmt: skip
    return results


def psnr(a: Image.Image, b: Image.Image) -> float:
    import numpy as np

    diff = np.asarray(a.convert("RGB"), float) - np.asarray(b.convert("RGB"), float)
    mse = float((diff**2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(255**2 / mse))


def decode_full(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


def quality_table(paths: dict[str, Path]) -> float:
    """Our resampled pixels (before encoding) against a full decode + Lanczos, per size; and
    after JPEG q85, ours against the competent pipeline's files."""
    print("\n## PSNR (dB) against a full decode + Lanczos to the same size")
    print(f"{'input':13} {'1600':>6} {'800':>6} {'400':>6} {'100':>6}   "
          f"{'400 as JPEG: ours':>17} {'competent':>9}")  # fmt: skip
    worst_400 = math.inf
    for label, path in paths.items():
        data = path.read_bytes()
        full = decode_full(data)
        pixels = thumbnails.downscaled(data, FULL_SET)
        scores = {t: psnr(img, full.resize(t, LANCZOS)) for t, img in pixels.items()}
        by_width = {t[0] if t[0] >= t[1] else t[1]: v for t, v in scores.items()}
        target_400 = next(t for t in pixels if max(t) == 400)
        worst_400 = min(worst_400, scores[target_400])
        ref = full.resize(target_400, LANCZOS)
        jpegs = []
        for render in (ours, competent):
            blob = next(b for b in render(data) if max(Image.open(io.BytesIO(b)).size) == 400)
            jpegs.append(psnr(Image.open(io.BytesIO(blob)), ref))
        cells = " ".join(f"{by_width.get(w, math.nan):6.1f}" for w in (1600, 800, 400, 100))
        print(f"{label:13} {cells}   {jpegs[0]:17.2f} {jpegs[1]:9.2f}")
    return worst_400


def webp_table(path: Path) -> None:
    print("\n## WebP method (quality 80) on the 12MP photo's 1600 and 400 px thumbnails")
    print(f"{'method':>6} {'1600 ms':>8} {'1600 KiB':>9} {'1600 dB':>8} {'400 ms':>7} "
          f"{'400 KiB':>8} {'400 dB':>7}")  # fmt: skip
    pixels = thumbnails.downscaled(path.read_bytes(), SIZES)
    sources = [pixels[(1600, 1200)], pixels[(400, 300)]]
    for method in range(7):
        cells = []
        for src, rounds in zip(sources, (2, 6), strict=True):
            data = imaging.encode(src, "WEBP", quality=80, webp_method=method)
            start = time.process_time()
            for _ in range(rounds):
                imaging.encode(src, "WEBP", quality=80, webp_method=method)
            ms = (time.process_time() - start) / rounds * 1e3
            cells += [ms, len(data) / 1024, psnr(Image.open(io.BytesIO(data)), src)]
        print(f"{method:6} {cells[0]:8.1f} {cells[1]:9.1f} {cells[2]:8.2f} {cells[3]:7.1f} "
              f"{cells[4]:8.1f} {cells[5]:7.2f}")  # fmt: skip
    print(
        f"(the engine uses method {thumbnails.WEBP_LARGE_METHOD} from "
        f"{thumbnails.WEBP_LARGE_PIXELS / 1e6:.0f} MP, {thumbnails.WEBP_METHOD} below)"
    )


def summary(speed: dict[str, dict[str, dict[str, float]]], worst_400: float) -> None:
    m = speed["12MP JPEG"]
    print("\n## Targets (12MP JPEG; ratios from this run)")
    full = m["ours publish"]["cpu"] / m["competent publish"]["cpu"]
    four = m["ours"]["cpu"] / m["competent"]["cpu"]
    print(f"ours/competent cpu (full set): {full:.2f}")
    print(f"ours/competent cpu (4 jpeg): {four:.2f}")
    print(f"psnr 400px min over photos: {worst_400:.1f} dB")
    for name in ("pyvips", "pyvips publish"):
        if name in m:
            ours_cpu = m["ours publish" if "publish" in name else "ours"]["cpu"]
            print(f"ours/{name} cpu: {ours_cpu / m[name]['cpu']:.2f}")
    print(f"targets: full set <= 0.60 {'OK' if full <= 0.6 else 'MISSED'}, "
          f"4 jpeg <= 0.85 {'OK' if four <= 0.85 else 'MISSED'}, "
          f"400 px >= 45 dB {'OK' if worst_400 >= 45 else 'MISSED'}")  # fmt: skip


THUMBOR_VENV = ROOT / "var" / "bench-venv"
THUMBOR_CONF = """
LOADER = "thumbor.loaders.file_loader"
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = "thumbor.storages.no_storage"
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
RESPECT_ORIENTATION = True
QUALITY = 85
PROGRESSIVE_JPEG = True  # Thumbor's default; its JPEGs are always optimize=True
"""


def thumbor_binary(given: str | None = None) -> Path | None:
    binary = Path(given) if given else THUMBOR_VENV / "bin" / "thumbor"
    if binary.exists():
        return binary
    print(f"installing thumbor into {THUMBOR_VENV} (scratch venv, not a project dependency) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(THUMBOR_VENV)], check=True)
        pip = [str(THUMBOR_VENV / "bin" / "pip"), "install", "-q", "thumbor"]
        subprocess.run(pip, check=True, timeout=300, capture_output=True, text=True)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        print(f"thumbor did not install on Python {sys.version.split()[0]}: {detail}")
        return None
    return binary


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_gets(url: str, count: int, pid: int | None = None) -> tuple[float, float, bytes]:
    """Median wall seconds per request and server CPU per request (if pid), after a warm-up."""
    body = urllib.request.urlopen(url, timeout=60).read()
    walls, cpu_before = [], server_cpu(pid) if pid else 0.0
    for _ in range(count):
        start = time.perf_counter()
        body = urllib.request.urlopen(url, timeout=60).read()
        walls.append(time.perf_counter() - start)
    cpu = (server_cpu(pid) - cpu_before) / count if pid else float("nan")
    return statistics.median(walls), cpu, body


def start_thumbor(binary: Path, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    conf = root / "thumbor.conf"
    conf.write_text(THUMBOR_CONF.format(root=str(root)))
    port = free_port()
    cmd = [str(binary), "-i", "127.0.0.1", "-p", str(port), "-c", str(conf), "-l", "error"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/healthcheck", timeout=2).read()
            return server, base
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("thumbor did not answer /healthcheck within 30 s")


def ours_in_process(data: bytes, size: thumbnails.Size, count: int) -> tuple[float, float, bytes]:
    rendition = thumbnails.render_one(data, size)
    walls, cpus = [], []
    for _ in range(count):
        wall, cpu = time.perf_counter(), time.process_time()
        rendition = thumbnails.render_one(data, size)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus), rendition.data


# Every timed request to our endpoint must render: each asks a size not made yet. For the
# 4000x3000 landscape, 400x401, 400x402, ... all fit to exactly 400x300 (the width binds), the
# same output and cost as 400x400 and as Thumbor's fit-in/400x400.
def variants(box: str, count: int) -> list[str]:
    width, height = (int(side) for side in box.split("x"))
    return [f"{width}x{height + 1 + i}" for i in range(count)]


class Service:
    """Our service as `manage.py serve` runs it (gunicorn, embedded worker, SQLite, local
    storage serving thumbnail bytes) in a fresh VAR_DIR, on a loopback port."""

    CLEARED = {
        "DATABASE_URL", "BROKER_URL", "CACHE_URL", "BUCKET_NAME", "PRIVATE_BUCKET_NAME",
        "AWS_S3_ENDPOINT_URL", "MEDIA_ROOT", "MEDIA_URL", "PUBLIC_BASE_URL", "API_PUBLIC_KEY",
        "PRIVATE_KEY", "DEBUG", "BIND", "PROMETHEUS_MULTIPROC_DIR", "THUMBNAIL_SIZES",
        "ON_DEMAND_SIZES", "JPEG_QUALITY", "WATERMARK_PATH",  # Thumbor: quality 85, no mark
    }  # fmt: skip

    def __init__(self, workdir: Path, on_demand_sizes: str, thumbnail_sizes: str = "") -> None:
        from infra.devsetup import ensure_dev_files

        self.var = workdir / "var"
        workdir.mkdir(parents=True, exist_ok=True)
        ensure_dev_files(self.var)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if k not in self.CLEARED}
        self.env.update(
            VAR_DIR=str(self.var),
            ALLOW_DEV_SECRETS="true",
            EMBEDDED_WORKER="true",
            IMAGE_SERVICE_URL=self.base,
            ON_DEMAND_SIZES=on_demand_sizes,
            DJANGO_SETTINGS_MODULE="imageservice.settings",
        )
        if thumbnail_sizes:
            self.env["THUMBNAIL_SIZES"] = thumbnail_sizes
        self.log = (workdir / "service.log").open("wb")
        cmd = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--no-admin"]
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log
        )
        wait_for(f"{self.base}/healthz", 90, self.process)

    def publish(self, data: bytes) -> str:
        """Upload as the frontend does, with a dev token; wait until it is published."""
        ids = ["--user-id", str(uuid.uuid4()), "--imageable-id", str(uuid.uuid4())]
        token = subprocess.run(
            [sys.executable, "manage.py", "sign_upload_token", "--minutes", "60", *ids],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        auth = {"Authorization": f"Bearer {token}"}
        image = "data:image/jpeg;base64," + base64.b64encode(data).decode()
        body = json.dumps({"data": {"image": image}}).encode()
        request = urllib.request.Request(
            f"{self.base}/", body, {**auth, "Content-Type": "application/json"}
        )
        self.photo = data
        answer = json.load(urllib.request.urlopen(request, timeout=60))
        deadline = time.monotonic() + 180
        while answer["state"] != "published":
            if (
                answer["state"] in ("in_review", "rejected", "failed")
                or time.monotonic() > deadline
            ):
                raise RuntimeError(f"the bench photo did not publish: {answer}")
            time.sleep(0.5)
            status = urllib.request.Request(answer["status_url"], headers=auth)
            answer = json.load(urllib.request.urlopen(status, timeout=10))
        return str(answer["md5"])

    def rendered(self, md5: str, sizes: list[str]) -> int:
        return sum((self.var / "media" / f"{md5}_{size}").is_file() for size in sizes)

    def cpu(self) -> float:
        """CPU seconds of gunicorn's master and workers."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(server_cpu(int(p)) for p in [pid, *children])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        body = answer.read()
    return time.perf_counter() - start, body


def interleaved(
    ours: Service, md5: str, sizes: list[str], thumbor: str, thumbor_pid: int
) -> dict[str, float]:
    """Alternate one request to each server so noise from other work hits both alike;
    the first pair is a warm-up."""
    walls: dict[str, list[float]] = {"ours": [], "thumbor": []}
    cpu = {"ours": 0.0, "thumbor": 0.0}
    for i, size in enumerate(sizes):
        before = ours.cpu(), server_cpu(thumbor_pid)
        wall, body = get(f"{ours.base}/{md5}_{size}")
        middle = ours.cpu(), server_cpu(thumbor_pid)
        t_wall, t_body = get(thumbor)
        after = ours.cpu(), server_cpu(thumbor_pid)
        if i == 0:
            first = Image.open(io.BytesIO(body)).size, Image.open(io.BytesIO(t_body)).size
            continue
        last = body
        walls["ours"].append(wall)
        walls["thumbor"].append(t_wall)
        cpu["ours"] += middle[0] - before[0]
        cpu["thumbor"] += after[1] - middle[1]
    timed = len(sizes) - 1
    full = decode_full(ours.photo)
    return {
        "bytes": len(last),
        "thumbor_bytes": len(t_body),
        "psnr": psnr_vs(last, full),
        "thumbor_psnr": psnr_vs(t_body, full),
        "ours": statistics.median(walls["ours"]),
        "thumbor": statistics.median(walls["thumbor"]),
        "ours_cpu": cpu["ours"] / timed,
        "thumbor_cpu": cpu["thumbor"] / timed,
        "ours_best": min(walls["ours"]),
        "thumbor_best": min(walls["thumbor"]),
        "same_size": float(first[0] == first[1]),
        "rendered": ours.rendered(md5, sizes),
        "requests": len(sizes),
    }


def compare_thumbor(
    path: Path, count: int, use_thumbor: bool, use_service: bool, thumbor: str | None
) -> None:
    print("\n## On-demand single size: render_one, our endpoint and Thumbor over loopback HTTP")
    binary = thumbor_binary(thumbor) if use_thumbor else None
    data = path.read_bytes()
    full = decode_full(data)
    boxes = ("400x400", "1600x1600")
    sizes = {box: variants(box, 2 * (count + 1)) for box in boxes}  # count + 1 per service
    allowed = ",".join(sizes["400x400"] + sizes["1600x1600"])
    with tempfile.TemporaryDirectory(prefix="thumbor-") as tmp:
        (Path(tmp) / "photo.jpg").write_bytes(data)
        server, base = start_thumbor(binary, Path(tmp)) if binary else (None, "")
        services: list[Service] = []
        try:
            if use_service and server is not None:
                print("starting our service twice (manage.py serve, fresh VAR_DIRs): default")
                print("THUMBNAIL_SIZES, and only 100x100 (every size from the original) ...")
                for name, configured in (("default", ""), ("small", "100x100")):
                    services.append(Service(Path(tmp) / name, allowed, configured))
                md5s = [service.publish(data) for service in services]
            for box in boxes:
                size = thumbnails.parse_sizes(box)[0]
                o_wall, o_cpu, o_out = ours_in_process(data, size, count)
                line = f"fit-in/{box:9} render_one in-process: {o_wall * 1e3:6.1f} ms wall"
                line += f" {o_cpu * 1e3:6.1f} ms CPU, {psnr_vs(o_out, full):4.1f} dB"
                if server is not None:
                    t_url = f"{base}/unsafe/fit-in/{box}/photo.jpg"
                    t_wall, t_cpu, t_out = timed_gets(t_url, count, server.pid)
                    line += f" | thumbor: {t_wall * 1e3:6.1f} ms wall {t_cpu * 1e3:6.1f} ms CPU"
                    line += f", {psnr_vs(t_out, full):4.1f} dB"
                    line += (
                        f" | render_one/thumbor wall {o_wall / t_wall:.2f} CPU {o_cpu / t_cpu:.2f}"
                    )
                print(line)
                if services and server is not None:
                    t_url = f"{base}/unsafe/fit-in/{box}/photo.jpg"
                    half = count + 1
                    runs = (
                        (services[0], md5s[0], "as published (default sizes)", sizes[box][:half]),
                        (services[1], md5s[1], "from the original (100x100)", sizes[box][half:]),
                    )  # fmt: skip
                    for service, md5, label, asked in runs:
                        measured = interleaved(service, md5, asked, t_url, server.pid)
                        report_endpoint(box, label, measured)
        finally:
            for service in services:
                service.stop()
            if server is not None:
                server.terminate()
                server.wait(timeout=10)


def report_endpoint(box: str, label: str, m: dict[str, float]) -> None:
    ratio = m["ours"] / m["thumbor"]
    print(f"  GET /<md5>_{box}, {label}: {m['rendered']:.0f} of {m['requests']:.0f} requests "
          f"rendered, same size as Thumbor: {bool(m['same_size'])}; median of "
          f"{m['requests'] - 1:.0f}, interleaved, after a warm-up pair")  # fmt: skip
    for name, prefix in (("ours", ""), ("thumbor", "thumbor_")):
        print(f"    {name:7} {m[name] * 1e3:6.1f} ms wall (best {m[name + '_best'] * 1e3:6.1f}) "
              f"{m[name + '_cpu'] * 1e3:6.1f} ms server CPU, {m[prefix + 'psnr']:5.2f} dB, "
              f"{m[prefix + 'bytes'] / 1024:6.1f} KiB")  # fmt: skip
    verdict = "OK" if ratio <= 1.0 else "MISSED"
    print(f"    ours/thumbor wall {ratio:.2f} (target <= 1.0) {verdict}, "
          f"server CPU {m['ours_cpu'] / m['thumbor_cpu']:.2f}")  # fmt: skip


def psnr_vs(blob: bytes, full: Image.Image) -> float:
    out = Image.open(io.BytesIO(blob))
    return psnr(out, full.resize(out.size, Image.Resampling.LANCZOS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--requests", type=int, default=10, help="timed HTTP requests per size and server"
    )
    parser.add_argument("--no-thumbor", action="store_true")
    parser.add_argument("--thumbor", help="a thumbor executable (default: installed into var/)")
    parser.add_argument("--no-service", action="store_true", help="do not start our service")
    parser.add_argument("--only-on-demand", action="store_true", help="skip the CPU tables")
    parser.add_argument("--worker", nargs=3, metavar=("VARIANT", "FILE", "ROUNDS"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="thumb-bench-") as tmp:
        print("building photos with tests/photos.py ...", flush=True)
        paths = build_inputs(Path(tmp))
        if not args.only_on_demand:
            speed = speed_table(paths, args.rounds)
            worst = quality_table(paths)
            webp_table(paths["12MP JPEG"])
            summary(speed, worst)
        compare_thumbor(
            paths["12MP JPEG"],
            args.requests,
            not args.no_thumbor,
            not args.no_service,
            args.thumbor,
        )
    print(f"\nfinished in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
