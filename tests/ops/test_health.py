from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.files.storage import storages
from django.test import Client, override_settings

from tests import services
from tests.ops.conftest import database_unreachable, silent_server

pytestmark = pytest.mark.django_db(transaction=True)


def readyz(client: Client, **headers: Any) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = client.get("/readyz", **headers)
    return response.status_code, response.json(), time.monotonic() - started


def s3_storages(bucket: str, endpoint: str | None = None) -> dict[str, Any]:
    base = {
        "endpoint_url": endpoint or services.s3_endpoint(),
        "region_name": "us-east-1",
        "bucket_name": bucket,
    }
    return {
        "default": {"BACKEND": "infra.storage.S3Storage", "OPTIONS": base},
        "public": {"BACKEND": "infra.storage.S3Storage", "OPTIONS": base},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def test_healthz_answers_without_touching_any_dependency(client: Client) -> None:
    with database_unreachable(), override_settings(BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_probes_answer_for_a_host_that_is_not_allowed(client: Client) -> None:
    # An orchestrator probes the pod's address; ALLOWED_HOSTS names the service.
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/api/v1/images/", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_readyz_reports_each_check_when_everything_answers(client: Client) -> None:
    status, body, _ = readyz(client)
    assert status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "storage", "broker"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["broker"]["detail"] == "embedded"


def test_readyz_is_red_when_the_database_is_unreachable(client: Client) -> None:
    with database_unreachable():
        status, body, _ = readyz(client)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert body["checks"]["storage"]["ok"]
    assert body["checks"]["broker"]["ok"]


def test_readyz_is_red_when_the_bucket_is_missing(client: Client) -> None:
    if not getattr(storages["default"], "bucket_name", None):
        pytest.skip("TEST_STORAGE=local: no bucket to lose")
    with override_settings(STORAGES=s3_storages("no-such-bucket")):
        status, body, _ = readyz(client)
    assert status == 503
    assert body["checks"]["storage"] == {"ok": False, "error": "ClientError"}
    assert body["checks"]["database"]["ok"]


def test_readyz_is_red_when_the_local_media_directory_cannot_be_written(
    client: Client, tmp_path: Any
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    local = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    broken = {
        "default": {**local, "OPTIONS": {"location": str(tmp_path / "private")}},
        "public": {**local, "OPTIONS": {"location": str(blocker / "media")}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=broken):
        status, body, _ = readyz(client)
    assert status == 503
    assert body["checks"]["storage"]["ok"] is False


def test_readyz_is_green_with_local_storage(client: Client, tmp_path: Any) -> None:
    local = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    fine = {
        "default": {**local, "OPTIONS": {"location": str(tmp_path / "private")}},
        "public": {**local, "OPTIONS": {"location": str(tmp_path / "media")}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=fine):
        status, body, _ = readyz(client)
    assert status == 200, body
    assert body["checks"]["storage"]["detail"] == f"{tmp_path / 'private'}, {tmp_path / 'media'}"


def test_readyz_is_red_when_the_redis_broker_is_unreachable(client: Client) -> None:
    with override_settings(BROKER_URL=f"redis://127.0.0.1:{services.free_port()}/0"):
        status, body, _ = readyz(client)
    assert status == 503
    assert body["checks"]["broker"] == {"ok": False, "error": "ConnectionError"}


@pytest.mark.services
def test_readyz_is_green_with_a_redis_broker_that_answers(client: Client) -> None:
    with services.redis_server() as url, override_settings(BROKER_URL=url):
        status, body, _ = readyz(client)
    assert status == 200, body
    assert body["checks"]["broker"] == {"ok": True, "detail": "redis"}


@pytest.mark.services
def test_readyz_checks_a_rabbitmq_broker(client: Client) -> None:
    if not services.rabbitmq_running():
        services.missing_service("RabbitMQ on 127.0.0.1:5672")
    with override_settings(BROKER_URL="amqp://guest:guest@127.0.0.1:5672/%2F"):
        status, body, _ = readyz(client)
    assert status == 200, body
    assert body["checks"]["broker"] == {"ok": True, "detail": "rabbitmq"}
    with override_settings(BROKER_URL="amqp://guest:wrong-password@127.0.0.1:5672/%2F"):
        status, body, _ = readyz(client)
    assert status == 503
    assert body["checks"]["broker"]["ok"] is False


# The silent server never answers, so any answer at all is the timeout at work; the bound is
# loose so that a loaded machine cannot fail it, and far under the clients' own defaults.
ANSWERED_IN_TIME = 10.0


def test_readyz_answers_in_time_when_a_dependency_hangs(client: Client) -> None:
    with silent_server() as port, override_settings(READINESS_TIMEOUT_SECONDS=0.5):
        with override_settings(BROKER_URL=f"redis://127.0.0.1:{port}/0"):
            status, body, elapsed = readyz(client)
        assert status == 503
        assert body["checks"]["broker"]["ok"] is False
        assert body["checks"]["broker"]["error"] in {"timeout", "TimeoutError"}
        assert elapsed < ANSWERED_IN_TIME

        if getattr(storages["default"], "bucket_name", None):
            with override_settings(
                STORAGES=s3_storages(services.TEST_BUCKET, f"http://127.0.0.1:{port}")
            ):
                status, body, elapsed = readyz(client)
            assert status == 503
            assert body["checks"]["storage"]["error"] == "timeout"
            assert elapsed < ANSWERED_IN_TIME


def test_readyz_does_not_show_connection_details(client: Client) -> None:
    secret_url = f"redis://:hunter2-secret@127.0.0.1:{services.free_port()}/0"
    with override_settings(BROKER_URL=secret_url):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert b"hunter2" not in response.content
    assert b"127.0.0.1" not in response.content
