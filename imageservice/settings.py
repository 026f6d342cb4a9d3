"""ImageService settings: one file, driven by environment variables.

Defaults run a fresh checkout with nothing external (SQLite, local files, an in-process worker,
the bundled moderation model). Production differs in values, never in code paths. A bad value
raises ImproperlyConfigured naming the variable. The README lists every variable.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from infra.keys import load_keys

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0, maximum: float = 1e18) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_url(name: str, default: str) -> str:
    value = env_str(name, default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ImproperlyConfigured(f"{name} must be an http(s) URL, not {value!r}")
    return value


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {sorted(choices)}, not {value!r}")
    return value


VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
DEBUG = env_bool("DEBUG", False)
# The development secret and keys `python -m infra.devsetup` wrote in VAR_DIR stand in for
# SECRET_KEY, API_PUBLIC_KEY and PRIVATE_KEY only when DEBUG is on or this is set (`./dev run`,
# the tests): a production process without its secrets refuses to start even if a development
# file lies in VAR_DIR.
ALLOW_DEV_SECRETS = DEBUG or env_bool("ALLOW_DEV_SECRETS", False)
_DEV_DIR = VAR_DIR if ALLOW_DEV_SECRETS else None


def _dev_secret_key() -> str:
    """The development secret `python -m infra.devsetup` wrote; settings never write."""
    path = VAR_DIR / "secret_key"
    if _DEV_DIR is None:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set (development files are used only with DEBUG=true or "
            "ALLOW_DEV_SECRETS=true)"
        )
    if not path.exists():
        raise ImproperlyConfigured(
            "SECRET_KEY is not set (for a development secret run `python -m infra.devsetup`)"
        )
    return path.read_text().strip()


# --- Core -------------------------------------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY") or _dev_secret_key()

IMAGE_SERVICE_URL = env_url("IMAGE_SERVICE_URL", "http://127.0.0.1:8000")
PINSTER_API_URL = env_url("PINSTER_API_URL", "http://127.0.0.1:3000")

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", f"{urlsplit(IMAGE_SERVICE_URL).hostname},localhost,127.0.0.1,[::1]"
)
CORS_ALLOWED_ORIGINS = env_list(
    "CORS_ALLOWED_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000"
)
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-request-id")
CORS_EXPOSE_HEADERS = ("x-request-id", "retry-after", "location")
CORS_PREFLIGHT_MAX_AGE = 86400

# Keys: PEM text, base64 of the PEM (as the old deployment stored them), or several separated
# by commas during a rotation (verify against any, sign with the first).
_dev_keys = _DEV_DIR / "keys" if _DEV_DIR is not None else None
API_PUBLIC_KEYS = load_keys("API_PUBLIC_KEY", private=False, dev_dir=_dev_keys)
PRIVATE_KEYS = load_keys("PRIVATE_KEY", private=True, dev_dir=_dev_keys)

INSTALLED_APPS = [
    "moderation.console.apps.ConsoleAdminConfig",  # django.contrib.admin with the console's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the API docs' Redoc bundle, served by us (no CDN)
    "axes",  # admin login throttling and lockout
    "django_dramatiq",
    "django_prometheus",
    "uploads",
    "publishing",
    "moderation",
    "notifications",
    "imageservice",
]

MIDDLEWARE = [
    "infra.middleware.TrustedProxyMiddleware",
    "infra.health.ProbeMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "infra.middleware.RequestIdMiddleware",
    "infra.metrics.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "infra.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # CORS first, so that the 411 and 413 below carry the headers a browser needs to read them.
    "corsheaders.middleware.CorsMiddleware",
    "infra.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # answers a locked-out login
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "imageservice.urls"
WSGI_APPLICATION = "imageservice.wsgi.application"
ADMIN_PATH = env_str("ADMIN_PATH", "admin/").strip("/") + "/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded worker threads write while requests do: wait for the lock instead of failing.
    # WAL lets readers run beside the writer, and with it synchronous=NORMAL is still safe
    # against corruption (a power cut may lose the last commits, not the file); a connection
    # per thread is kept rather than opened per request.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits) ----------------------------------------------------------------------
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": CACHE_URL,
            # Rate-limit counters are worth a few milliseconds: with Redis hung, an upload
            # waits at most twice this (a read and a write), then goes on without them.
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 0.25,
                "SOCKET_TIMEOUT": 0.25,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Storage ----------------------------------------------------------------------------------
# Originals are private until approved (`raw/<md5>`); the approved copy `<md5>` and thumbnails
# `<md5>_<W>x<H>` are public. Same layout on S3 and on local disk.
BUCKET_NAME = env_str("BUCKET_NAME")
PRIVATE_BUCKET_NAME = env_str("PRIVATE_BUCKET_NAME", BUCKET_NAME)
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", env_str("AWS_DEFAULT_REGION", "us-east-1"))
PUBLIC_CACHE_CONTROL = env_str("PUBLIC_CACHE_CONTROL", "public, max-age=86400")
PUBLIC_OBJECT_ACL = env_str("PUBLIC_OBJECT_ACL", "public-read") or None
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = env_str("MEDIA_URL", f"{IMAGE_SERVICE_URL}/media/")
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL")  # a CDN in front of the bucket, if any

STORAGE_TIMEOUT_SECONDS = env_int("STORAGE_TIMEOUT_SECONDS", 10, minimum=1)

if BUCKET_NAME:
    from botocore.config import Config

    warnings.filterwarnings("ignore", "The AWS_S3_USE_THREADS setting is deprecated")
    _s3 = {
        "endpoint_url": AWS_S3_ENDPOINT_URL,
        "region_name": AWS_S3_REGION_NAME,
        "file_overwrite": True,
        "signature_version": "s3v4",
        # Objects here are a few MB at most: a transfer thread pool per object costs more
        # CPU than it saves. (A TransferConfig object would do the same without the
        # deprecation warning, but settings must survive copy.deepcopy, and it does not.)
        "use_threads": False,
        # Bounded: a store that hangs fails an upload with a 503 long before gunicorn's timeout
        # (botocore's defaults, 60 s per read and 3 attempts, held a request for 3 minutes).
        "client_config": Config(
            signature_version="s3v4",
            connect_timeout=STORAGE_TIMEOUT_SECONDS,
            read_timeout=STORAGE_TIMEOUT_SECONDS,
            retries={"mode": "standard", "total_max_attempts": 2},
            # No CRC32 of every body unless the operation requires one (DeleteObjects does),
            # and over HTTPS no SHA-256 of the payload in the signature: TLS protects it.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"payload_signing_enabled": False},
        ),
    }
    _public_domain = urlsplit(PUBLIC_BASE_URL).netloc if PUBLIC_BASE_URL else None
    STORAGES = {
        "default": {
            "BACKEND": "infra.storage.S3Storage",
            "OPTIONS": {
                **_s3,
                "bucket_name": PRIVATE_BUCKET_NAME,
                "location": "raw",
                "default_acl": "private",
                "querystring_auth": True,
                "querystring_expire": 300,
            },
        },
        "public": {
            "BACKEND": "infra.storage.S3Storage",
            "OPTIONS": {
                **_s3,
                "bucket_name": BUCKET_NAME,
                "default_acl": PUBLIC_OBJECT_ACL,
                "querystring_auth": False,
                "custom_domain": _public_domain,
                "object_parameters": {"CacheControl": PUBLIC_CACHE_CONTROL},
            },
        },
    }
else:
    STORAGES = {
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(VAR_DIR / "private" / "raw"), "allow_overwrite": True},
        },
        "public": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {
                "location": str(MEDIA_ROOT),
                "base_url": MEDIA_URL,
                "allow_overwrite": True,
            },
        },
    }
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Upload limits ----------------------------------------------------------------------------
MAX_IMAGE_BYTES = env_int("MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
# A base64 body is 4/3 of the image plus the JSON around it.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", MAX_IMAGE_BYTES * 4 // 3 + 64 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_HANDLERS = [  # Django's two, parsing in 1 MiB chunks instead of 64 KiB
    "uploads.parsers.MemoryFileUploadHandler",
    "uploads.parsers.TemporaryFileUploadHandler",
]
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000, minimum=1)
MAX_TOTAL_PIXELS = env_int("MAX_TOTAL_PIXELS", 200_000_000, minimum=1)
MAX_FRAMES = env_int("MAX_FRAMES", 100, minimum=1)
MIN_IMAGE_SIDE = env_int("MIN_IMAGE_SIDE", 16, minimum=1)
ALLOWED_IMAGE_FORMATS = env_list("ALLOWED_IMAGE_FORMATS", "JPEG,PNG,GIF,WEBP,HEIF")
UPLOAD_RATE = env_str("UPLOAD_RATE", "60/min")
MAX_CONCURRENT_UPLOADS = env_int("MAX_CONCURRENT_UPLOADS", 16, minimum=1)

# --- Authentication of upload tokens (issued by PinsterApi) ------------------------------------
JWT_LEEWAY_SECONDS = env_int("JWT_LEEWAY_SECONDS", 10)
MAX_TOKEN_BYTES = env_int("MAX_TOKEN_BYTES", 4096, minimum=256)
# `exp` minus `nbf` (else `iat`, else now) may not exceed this: PinsterApi issues 10 minutes.
MAX_TOKEN_LIFETIME_SECONDS = env_int("MAX_TOKEN_LIFETIME_SECONDS", 3600, minimum=60)
SIMPLE_JWT = {
    "ALGORITHM": "RS256",
    "SIGNING_KEY": None,
    "VERIFYING_KEY": API_PUBLIC_KEYS[0],
    "AUDIENCE": IMAGE_SERVICE_URL,
    "ISSUER": PINSTER_API_URL,
    "LEEWAY": JWT_LEEWAY_SECONDS,
    "USER_ID_CLAIM": "user_id",
    "USER_ID_FIELD": "id",
    "TOKEN_TYPE_CLAIM": None,
    "JTI_CLAIM": None,
    "AUTH_TOKEN_CLASSES": ("uploads.authentication.UploadToken",),
    "TOKEN_USER_CLASS": "uploads.authentication.Uploader",
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["uploads.authentication.PinsterTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "uploads.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "infra.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ImageService API",
    "DESCRIPTION": "Upload images for Pinster pins and collections, and follow their processing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "REDOC_DIST": "SIDECAR",  # the Redoc bundle from our static files, not a CDN
}

# --- Background work --------------------------------------------------------------------------
BROKER_URL = env_str("BROKER_URL")
# A Redis broker call gives up after this long (a hung Redis must not hold an upload: the image
# is left to the reconciler), and after a failure sends are skipped for BROKER_BACKOFF_SECONDS.
BROKER_TIMEOUT_SECONDS = env_float("BROKER_TIMEOUT_SECONDS", 0.5, minimum=0.05, maximum=60.0)
BROKER_BACKOFF_SECONDS = env_float("BROKER_BACKOFF_SECONDS", 15.0, minimum=0.0, maximum=600.0)
_broker_scheme = urlsplit(BROKER_URL).scheme
if not BROKER_URL:
    _broker: dict[str, object] = {"BROKER": "dramatiq.brokers.stub.StubBroker", "OPTIONS": {}}
elif _broker_scheme in {"redis", "rediss"}:
    # redis-py reads socket timeouts from the URL's query (Dramatiq builds its pool from the URL).
    _redis_query = dict(parse_qsl(urlsplit(BROKER_URL).query))
    _redis_query.setdefault("socket_timeout", str(BROKER_TIMEOUT_SECONDS))
    _redis_query.setdefault("socket_connect_timeout", str(BROKER_TIMEOUT_SECONDS))
    _broker_url = urlunsplit(urlsplit(BROKER_URL)._replace(query=urlencode(_redis_query)))
    # A broker whose fetch times out (a hung Redis) continues under a new id (infra.broker); the
    # messages the lost fetch took come back only when maintenance finds the old id's heartbeat
    # stale. Dramatiq runs maintenance with 1 command in 1000 by default (minutes with idle
    # workers): 2 in 100 here, so they return within about a minute of the heartbeat timeout.
    _broker = {
        "BROKER": "infra.broker.RedisBroker",
        "OPTIONS": {"url": _broker_url, "maintenance_chance": 20_000},
    }
elif _broker_scheme in {"amqp", "amqps"}:
    _broker = {
        "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        "OPTIONS": {"url": BROKER_URL, "confirm_delivery": True},
    }
else:
    raise ImproperlyConfigured(
        f"BROKER_URL must be redis://, rediss:// or amqp://, not {BROKER_URL!r}"
    )
# Explicit: django-dramatiq's built-in default list names middleware Dramatiq 2 no longer has.
_broker["MIDDLEWARE"] = [
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.ShutdownNotifications",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Pipelines",
    "dramatiq.middleware.Retries",
    "django_dramatiq.middleware.DbConnectionsMiddleware",
    "infra.logging.TaskContextMiddleware",
    "infra.metrics.TaskMetricsMiddleware",
    "imageservice.periodic.PeriodicJobsMiddleware",
]
DRAMATIQ_BROKER = _broker
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]
EMBEDDED_WORKER_THREADS = env_int("EMBEDDED_WORKER_THREADS", 2, minimum=0)
# Without BROKER_URL the web process runs the tasks itself only when asked (or in DEBUG): a
# production web tier whose BROKER_URL was forgotten refuses to start instead.
EMBEDDED_WORKER = env_bool("EMBEDDED_WORKER", DEBUG)

# Pipeline: an image whose state has not moved for this long is re-enqueued by the reconciler.
STALE_AFTER_SECONDS = env_int("STALE_AFTER_SECONDS", 600, minimum=5)
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 30, minimum=1)
# A claimed image is held this long, renewed every third of it while its task runs: a dead
# worker's image is free again after at most this, then re-enqueued by the next reconcile.
LEASE_SECONDS = env_int("LEASE_SECONDS", 20, minimum=5)
MAX_STAGE_ATTEMPTS = env_int("MAX_STAGE_ATTEMPTS", 5, minimum=1)

# --- Thumbnails -------------------------------------------------------------------------------
THUMBNAIL_SIZES = env_str("THUMBNAIL_SIZES", "100x100,400x400,800x800,1600x1600,400xauto")
ON_DEMAND_SIZES = env_str("ON_DEMAND_SIZES", f"{THUMBNAIL_SIZES},200x200,600x600,1200x1200")
THUMBNAIL_FORMATS = env_list("THUMBNAIL_FORMATS", "JPEG,WEBP")
THUMBNAIL_BACKGROUND = env_str("THUMBNAIL_BACKGROUND", "#ffffff")
JPEG_QUALITY = env_int("JPEG_QUALITY", 85, minimum=1)
WEBP_QUALITY = env_int("WEBP_QUALITY", 80, minimum=1)
WATERMARK_PATH = env_str("WATERMARK_PATH")
PUBLIC_ORIGINAL_MAX_SIDE = env_int("PUBLIC_ORIGINAL_MAX_SIDE", 4096, minimum=16)
AVIF_QUALITY = env_int("AVIF_QUALITY", 60, minimum=1)
# Delivery: signed URLs for any size and the fill mode (any of these HMAC keys verifies, so a new
# one can be added before the old one goes; none: signed URLs are off), and on-demand budgets.
URL_SIGNING_KEYS = env_list("URL_SIGNING_KEYS")
RENDER_CONCURRENCY = env_int("RENDER_CONCURRENCY", 2, minimum=1)  # renders at once per process
RENDER_WAIT_SECONDS = env_float("RENDER_WAIT_SECONDS", 10.0, minimum=0.0, maximum=60.0)
RENDER_RATE = env_str("RENDER_RATE", "60/min")  # renders of missing keys per client address
# Decoded pixels the threads of one process may hold at once (moderation, publishing and
# on-demand renders); a decode that would exceed it waits. Memory: docs/thumbnails.md.
DECODE_PIXEL_BUDGET = env_int("DECODE_PIXEL_BUDGET", 64_000_000, minimum=1_000_000)

# --- Moderation -------------------------------------------------------------------------------
MODERATION_BACKEND = env_str("MODERATION_BACKEND", "moderation.backends.LocalModelBackend")
MODERATION_POLICY = env_str("MODERATION_POLICY")  # JSON; empty means the built-in defaults
REKOGNITION_REGION = env_str("REKOGNITION_REGION", AWS_S3_REGION_NAME)
REKOGNITION_ENDPOINT_URL = env_str("REKOGNITION_ENDPOINT_URL") or None
REKOGNITION_MAX_ATTEMPTS = env_int("REKOGNITION_MAX_ATTEMPTS", 3, minimum=1)  # botocore standard
REKOGNITION_TIMEOUT_SECONDS = env_float("REKOGNITION_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# onnxruntime intra-op threads; 0 = its default. One thread halves the model's CPU per image
# (its thread pool spins while waiting) for the same wall time within a busy worker.
LOCAL_MODEL_THREADS = env_int("LOCAL_MODEL_THREADS", 1)
BLOCKLIST_MAX_DISTANCE = env_int("BLOCKLIST_MAX_DISTANCE", 6, minimum=0)  # bits of 64
BLOCKLIST_ACTION = env_choice("BLOCKLIST_ACTION", "review", {"review", "reject"})
# The review workspace: how long opening an image keeps it for one moderator, how long a
# decision can be undone, and the label confidence (0-100) above which previews are blurred.
REVIEW_CLAIM_SECONDS = env_int("REVIEW_CLAIM_SECONDS", 300, minimum=10)
REVIEW_UNDO_SECONDS = env_int("REVIEW_UNDO_SECONDS", 5, minimum=0)
REVIEW_BLUR_CONFIDENCE = env_float("REVIEW_BLUR_CONFIDENCE", 80.0, minimum=0.0, maximum=100.0)

# --- Notifications to PinsterApi -------------------------------------------------------------
REJECTION_NOTIFY_URL = env_str("REJECTION_NOTIFY_URL")
NOTIFY_CONNECT_TIMEOUT = env_float("NOTIFY_CONNECT_TIMEOUT", 5.0, minimum=0.1)
NOTIFY_TOTAL_TIMEOUT = env_float("NOTIFY_TOTAL_TIMEOUT", 15.0, minimum=0.1)
NOTIFY_RETRY_HOURS = env_float("NOTIFY_RETRY_HOURS", 72.0, minimum=0.0)

# --- Operations: probes and metrics ---------------------------------------------------------
# /readyz gives each check this long; it answers within it even when a dependency hangs.
READINESS_TIMEOUT_SECONDS = env_float("READINESS_TIMEOUT_SECONDS", 2.0, minimum=0.1, maximum=30.0)
# /metrics needs "Authorization: Bearer <METRICS_TOKEN>"; without a token it is off unless DEBUG.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# A worker instance serves its metrics here (0: off). Its processes share counters through
# prometheus_client's multiprocess mode, which needs PROMETHEUS_MULTIPROC_DIR from the start.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "127.0.0.1")
if WORKER_METRICS_PORT and not env_str("PROMETHEUS_MULTIPROC_DIR"):
    raise ImproperlyConfigured(
        "WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR (an empty directory per instance)"
    )

# --- Security ---------------------------------------------------------------------------------
_behind_tls = IMAGE_SERVICE_URL.startswith("https://")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _behind_tls else None
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _behind_tls
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _behind_tls else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _behind_tls)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)  # a commitment: opt in
# Plain http that reached us through the TLS proxy is redirected; probes and scrapes are
# answered before this (infra.health.ProbeMiddleware).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _behind_tls)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = [IMAGE_SERVICE_URL]
X_FRAME_OPTIONS = "DENY"

# --- Hardening: proxy trust, admin login lockout, Content-Security-Policy ---------------------
# Forwarding headers (X-Forwarded-For/-Proto, X-Real-IP) are believed only from these addresses
# or networks (the reverse proxy); from any other peer they are dropped before Django reads them.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "127.0.0.1,::1")
# django-axes: after AXES_FAILURE_LIMIT failed admin logins for one username from one address,
# that pair is locked out for AXES_COOLOFF_MINUTES (a 429). Counted in the database, so every
# web process sees the same attempts; a successful login resets the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ONLY_ADMIN_SITE = True
AXES_VERBOSE = False
# The client's address: the proxy's X-Forwarded-For (set, never appended, by our nginx; dropped
# from untrusted peers by infra.middleware.TrustedProxyMiddleware), else the peer.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
# Content-Security-Policy on every response (the admin, the API docs): scripts only from our
# own static files, no inline script. Styles allow inline (Redoc injects its <style> tags).
# Images may also come from the public storage's origin (thumbnails in the console).
CSP_EXTRA_IMG_SRC = env_list("CSP_EXTRA_IMG_SRC")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Logging: one JSON object per line, with the request id --------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"})
LOG_FORMAT = env_choice("LOG_FORMAT", "json", {"json", "text"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "infra.logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "infra.logging.JsonFormatter"},
        "text": {
            "()": "infra.logging.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "dramatiq": {"level": "WARNING"},
    },
}
