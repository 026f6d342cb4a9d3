"""The S3-compatible store down or hanging while an upload arrives: a 503 with a code and
Retry-After, within bounded time, and nothing half-written (no row, no object, no job)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator

import pytest
from botocore.config import Config
from django.conf import settings
from django.test import override_settings

from tests.faults.helpers import assert_integrity, data_url
from tests.faults.services import TcpProxy
from tests.photos import photo
from tests.services import s3_endpoint
from uploads.models import Image

pytestmark = pytest.mark.django_db


TIMEOUT = 1  # seconds: the configured policy (attempts, backoff) with a shorter wait
# An answer within this many seconds shows the timeouts were applied: botocore's defaults would
# hold the upload for minutes (60 s a read, 3 attempts), while a loaded machine may add seconds.
BOUNDED = 20


@pytest.fixture
def store() -> Iterator[TcpProxy]:
    """The test S3 server behind a proxy the test can cut; storage points at the proxy."""
    if "bucket_name" not in settings.STORAGES["default"].get("OPTIONS", {}):
        pytest.skip("needs S3 storage (TEST_STORAGE=s3)")
    port = int(s3_endpoint().rsplit(":", 1)[1])
    proxy = TcpProxy(port).up()
    storages = copy.deepcopy(settings.STORAGES)
    for alias in ("default", "public"):
        options = storages[alias]["OPTIONS"]
        options["endpoint_url"] = proxy.url
        quicker = Config(connect_timeout=TIMEOUT, read_timeout=TIMEOUT)
        options["client_config"] = options["client_config"].merge(quicker)
    with override_settings(STORAGES=storages):
        yield proxy
    proxy.down()


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "storage_unavailable"
    assert int(response["Retry-After"]) > 0


def test_an_upload_while_the_store_refuses_connections_is_a_503_and_leaves_nothing(
    store, post, assert_nothing_left
):
    store.down()
    started = time.monotonic()

    response = post({"data": {"image": data_url(photo(320, 240))}})

    assert_unavailable(response)
    assert time.monotonic() - started < BOUNDED
    store.up()
    assert_nothing_left()


def test_storage_requests_are_bounded_by_storage_timeout_seconds():
    """A regression: the setting was read but never used, and botocore's defaults (60 s per
    read, 3 attempts) held an upload for 3 minutes, past gunicorn's timeout."""
    config = settings.STORAGES["default"]["OPTIONS"]["client_config"]

    assert config.connect_timeout == config.read_timeout == settings.STORAGE_TIMEOUT_SECONDS
    assert config.retries["total_max_attempts"] * settings.STORAGE_TIMEOUT_SECONDS < 60


def test_an_upload_while_the_store_hangs_is_a_503_within_the_storage_timeout(
    store, post, assert_nothing_left
):
    store.stall()
    started = time.monotonic()

    response = post({"data": {"image": data_url(photo(320, 240))}})

    elapsed = time.monotonic() - started
    assert_unavailable(response)
    assert elapsed < BOUNDED
    store.up()
    assert_nothing_left()


def test_the_same_upload_succeeds_once_the_store_is_back(store, post):
    store.down()
    assert_unavailable(post({"data": {"image": data_url(photo(320, 240))}}))
    store.up()

    response = post({"data": {"image": data_url(photo(320, 240))}})

    assert response.status_code == 202, response.content
    assert Image.objects.count() == 1
    assert_integrity()
