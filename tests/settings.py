"""Test settings: the real settings module, pointed at real local services where they exist.

PostgreSQL when one answers (always under CI), else SQLite; S3 storage on a moto server on
loopback unless TEST_STORAGE=local. Each test process gets its own database and files, so
several runs can share a machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from infra.devsetup import ensure_dev_files
from tests import services

_var = tempfile.mkdtemp(prefix="imageservice-test-")
ensure_dev_files(Path(_var))
os.environ.update(
    {
        "VAR_DIR": _var,
        "IMAGE_SERVICE_URL": "http://imageservice.test",
        "PINSTER_API_URL": "http://pinster.test",
        "ALLOWED_HOSTS": "testserver,imageservice.test,localhost,127.0.0.1",
        "LOG_FORMAT": "json",
        "MODERATION_BACKEND": os.environ.get(
            "TEST_MODERATION_BACKEND", "moderation.backends.TestBackend"
        ),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
)
for _name in (
    "DATABASE_URL",
    "BROKER_URL",
    "CACHE_URL",
    "BUCKET_NAME",
    "API_PUBLIC_KEY",
    "PRIVATE_KEY",
    "AWS_S3_ENDPOINT_URL",
    "REJECTION_NOTIFY_URL",
    "DEBUG",
):
    os.environ.pop(_name, None)

_pg = services.postgres_url()
if _pg:
    os.environ["DATABASE_URL"] = _pg
if os.environ.get("TEST_STORAGE", "s3") == "s3":
    os.environ["BUCKET_NAME"] = services.TEST_BUCKET
    os.environ["AWS_S3_ENDPOINT_URL"] = services.s3_endpoint()

from imageservice.settings import *  # noqa: E402, F403
from imageservice.settings import DATABASES, LOGGING, STORAGES  # noqa: E402

if _pg:
    DATABASES["default"]["TEST"] = {"NAME": f"test_imageservice_{os.getpid()}"}
else:
    # A file rather than SQLite's in-memory test database, which refuses a second connection (a
    # worker thread) with "table is locked" instead of letting it wait, as the service's own
    # SQLite settings (WAL, a 20 s busy timeout) do.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(_var, "test-db.sqlite3")}
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
STATIC_ROOT = os.path.join(_var, "static")
os.makedirs(STATIC_ROOT, exist_ok=True)
WHITENOISE_USE_FINDERS = True
LOGGING["loggers"]["werkzeug"] = {"level": "WARNING"}  # the moto server's access log
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMBEDDED_WORKER_THREADS = 0
