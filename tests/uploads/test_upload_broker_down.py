"""A hung broker (a Redis that accepts connections and never answers, as a SIGSTOPped one does)
does not hold an upload: the send gives up after BROKER_TIMEOUT_SECONDS, the image is marked,
and the reconciler's next round enqueues it once the broker is back."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from dramatiq.brokers.redis import RedisBroker

from infra import broker as broker_module
from tests.photos import photo
from tests.uploads.conftest import data_url
from uploads.models import MODERATION, Image
from uploads.pipeline import ENQUEUE_FAILED, actor_for, reconcile_images

pytestmark = pytest.mark.django_db


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A listening socket nobody accepts from: connects succeed, every read waits."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0?socket_timeout=0.5&socket_connect_timeout=0.5"


@pytest.fixture
def moderation_on_hung_redis(hung_redis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The moderation actor sends to the hung Redis (the rest of the test keeps the stub)."""
    monkeypatch.setattr(actor_for(MODERATION), "broker", RedisBroker(url=hung_redis))


def test_an_upload_while_the_broker_hangs_is_accepted_and_marked_for_the_reconciler(
    post, jpeg, moderation_on_hung_redis, broker
):
    started = time.monotonic()
    response = post({"data": {"image": data_url(jpeg)}})
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    image = Image.objects.get(pk=response.json()["id"])
    assert image.enqueued_at == ENQUEUE_FAILED
    print(f"upload with the broker hung: {elapsed:.2f} s (broker timeout 0.5 s)")


def test_the_next_reconciler_round_enqueues_an_image_whose_enqueue_failed(
    post, jpeg, moderation_on_hung_redis, broker, monkeypatch
):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    monkeypatch.undo()  # the broker is back

    assert reconcile_images() == 1

    assert broker.queues["moderation"].qsize() == 1
    image = Image.objects.get(pk=image_id)
    assert image.enqueued_at != ENQUEUE_FAILED
    assert image.events.filter(kind="reconciled", reason__contains="enqueue failed").exists()
    assert reconcile_images() == 0  # fresh: not enqueued again


def test_a_reconciler_round_while_the_broker_still_hangs_marks_the_image_again(
    post, jpeg, moderation_on_hung_redis, broker
):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]

    assert reconcile_images() == 0

    assert Image.objects.get(pk=image_id).enqueued_at == ENQUEUE_FAILED


def test_after_a_failed_send_the_next_ones_skip_the_broker_for_the_backoff(
    post, moderation_on_hung_redis, broker, settings, monkeypatch
):
    settings.BROKER_BACKOFF_SECONDS = 30
    broker_module.backoff.reset()
    try:
        post({"data": {"image": data_url(photo(64, 48))}})
        monkeypatch.undo()  # the broker answers again, but within the backoff it is not asked
        second = post({"data": {"image": data_url(photo(48, 64))}})
    finally:
        broker_module.backoff.reset()

    assert second.status_code == 202
    assert Image.objects.get(pk=second.json()["id"]).enqueued_at == ENQUEUE_FAILED
    assert broker.queues["moderation"].qsize() == 0
