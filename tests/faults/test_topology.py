"""Faults of the infrastructure, on the real topology (gunicorn + 2 Dramatiq workers on Redis,
PostgreSQL, S3) started by deploy/stack.py against private servers: the broker down, flushed and
restarted, workers killed and stopped mid-task, PostgreSQL restarted under an upload and under a
task, the store down under a worker. Every accepted image reaches its final state, no transition
happens twice, and `manage.py check_integrity --orphans` passes at the end of each."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.faults.topology import Topology, wait_for_request
from tests.photos import photo

pytestmark = [pytest.mark.services, pytest.mark.slow]

PIPELINE = [
    ("received", "moderating"),
    ("moderating", "approved"),
    ("approved", "publishing"),
    ("publishing", "published"),
]


def accepted(stack: Topology, count: int, seed: int = 0) -> list[str]:
    ids = []
    for number in range(count):
        status, _, body = stack.upload(photo(640, 480, quality=60 + seed + number))
        assert status == 202, body
        ids.append(body["id"])
    return ids


def assert_published_once(stack: Topology, ids: list[str], *, past_leases: bool = False) -> None:
    states = stack.wait_final_past_leases(ids, quiet=8) if past_leases else stack.wait_final(ids)
    assert set(states.values()) == {"published"}, states
    for image_id in ids:
        assert stack.transitions(image_id) == PIPELINE, image_id
    stack.assert_integrity()


def fake_port(stack: Topology) -> int:
    return int(stack.rekognition.url.rsplit(":", 1)[1])


# --- Redis --------------------------------------------------------------------------------


def test_uploads_while_redis_is_down_are_accepted_and_finished_once_it_is_back(stack):
    stack.redis.stop()
    try:
        started = time.monotonic()
        ids = accepted(stack, 3, seed=1)
        assert time.monotonic() - started < 10
    finally:
        stack.redis.start()

    assert_published_once(stack, ids)


def test_messages_lost_in_a_redis_flush_are_sent_again_by_the_reconciler(stack):
    for number in (1, 2):
        stack.kill_worker(number, signal.SIGTERM)
    for number in (1, 2):
        assert stack.worker(number).wait(40)
    try:
        ids = accepted(stack, 4, seed=5)
        stack.redis.flush()
    finally:
        for number in (1, 2):
            stack.restart_worker(number)

    assert_published_once(stack, ids)


def test_redis_restarted_while_images_are_moderated_loses_none(stack):
    stack.rekognition.script, stack.rekognition.delay = ["slow"], 2.0
    calls = len(stack.rekognition.requests)
    ids = accepted(stack, 4, seed=10)
    wait_for_request(stack.rekognition, calls + 1)

    stack.redis.stop()
    time.sleep(1)
    stack.redis.start()
    stack.rekognition.script = ["ok"]

    assert_published_once(stack, ids)


# --- Workers ------------------------------------------------------------------------------


def test_a_worker_killed_mid_task_leaves_the_image_to_another_after_its_lease(stack):
    stack.rekognition.script, stack.rekognition.delay = ["slow", "ok"], 30.0
    calls = len(stack.rekognition.requests)
    (image_id,) = accepted(stack, 1, seed=15)
    wait_for_request(stack.rekognition, calls + 1)
    holder = stack.worker_talking_to(fake_port(stack))
    assert holder is not None

    stack.kill_worker(holder, signal.SIGKILL)
    stack.restart_worker(holder)
    assert stack.state(image_id) == "moderating"
    stack.lease_runs_out(image_id)

    assert stack.wait_final([image_id]) == {image_id: "published"}
    assert stack.transitions(image_id) == PIPELINE
    attempts = stack.sql(
        "SELECT count(*) FROM uploads_imageevent WHERE image_id = %s AND kind = 'retry'", image_id
    )
    assert attempts == [(1,)]  # claimed again once, after the killed attempt
    stack.assert_integrity()


def test_a_worker_stopped_during_a_long_task_finishes_it_first(stack):
    stack.rekognition.script, stack.rekognition.delay = ["slow", "ok"], 4.0
    calls = len(stack.rekognition.requests)
    (image_id,) = accepted(stack, 1, seed=20)
    wait_for_request(stack.rekognition, calls + 1)
    holder = stack.worker_talking_to(fake_port(stack))
    assert holder is not None
    calls += 1

    started = time.monotonic()
    stack.kill_worker(holder, signal.SIGTERM)
    assert stack.worker(holder).wait(40), "the worker did not stop"
    stopped_after = time.monotonic() - started

    try:
        assert stack.worker(holder).process.returncode == 0
        assert stopped_after > 2  # it waited for Rekognition's answer
        assert stack.state(image_id) in {"approved", "publishing", "published"}
        assert len(stack.rekognition.requests) == calls  # the verdict was not asked for again
    finally:
        stack.restart_worker(holder)
    assert stack.wait_final([image_id]) == {image_id: "published"}
    assert stack.transitions(image_id) == PIPELINE
    stack.assert_integrity()


# --- PostgreSQL ---------------------------------------------------------------------------


def test_postgres_restarted_under_uploads_gives_503s_or_202s_and_loses_nothing(stack):
    outcomes: list[tuple[int, dict, dict]] = []

    def keep_uploading() -> None:
        for number in range(8):
            outcomes.append(stack.upload(photo(640, 480, quality=40 + number)))

    uploader = threading.Thread(target=keep_uploading)
    uploader.start()
    time.sleep(0.5)
    stack.pg.restart()
    uploader.join(120)

    statuses = [status for status, _, _ in outcomes]
    assert set(statuses) <= {202, 503}, outcomes
    for status, headers, body in outcomes:
        if status == 503:
            assert body["code"] == "database_unavailable"
            assert int(headers["Retry-After"]) > 0
    ids = [body["id"] for status, _, body in outcomes if status == 202]
    assert ids
    time.sleep(6)  # an orphan must be older than STALE_AFTER_SECONDS to be reported
    # Images being moderated when the database went away wait for their lease.
    assert_published_once(stack, ids, past_leases=True)


def test_postgres_restarted_under_a_task_the_image_is_finished_after_its_lease(stack):
    stack.rekognition.script, stack.rekognition.delay = ["slow", "ok"], 3.0
    calls = len(stack.rekognition.requests)
    (image_id,) = accepted(stack, 1, seed=30)
    wait_for_request(stack.rekognition, calls + 1)

    stack.pg.restart()  # the verdict arrives on a dead connection; the retry finds the lease held

    assert stack.wait_final_past_leases([image_id], quiet=6) == {image_id: "published"}
    assert stack.transitions(image_id) == PIPELINE
    stack.assert_integrity()


# --- Storage ------------------------------------------------------------------------------


def test_the_store_down_under_a_worker_is_retried_and_finished_after_recovery(stack):
    stack.rekognition.script, stack.rekognition.delay = ["slow", "ok"], 2.0
    calls = len(stack.rekognition.requests)
    (image_id,) = accepted(stack, 1, seed=35)
    wait_for_request(stack.rekognition, calls + 1)

    stack.s3.down()  # publishing cannot read the original nor write the thumbnails
    time.sleep(4)
    failed = stack.sql(
        "SELECT count(*) FROM uploads_imageevent WHERE image_id = %s AND kind = 'attempt_failed'",
        image_id,
    )[0][0]
    stack.s3.up()

    assert failed >= 1
    assert stack.wait_final([image_id]) == {image_id: "published"}
    assert stack.transitions(image_id) == PIPELINE
    stack.assert_integrity()


def test_an_upload_while_the_store_is_down_is_a_503_and_nothing_is_written(stack):
    before = stack.sql("SELECT count(*) FROM uploads_image")
    stack.s3.down()
    try:
        status, headers, body = stack.upload(photo(640, 480, quality=41))
    finally:
        stack.s3.up()

    assert (status, body["code"]) == (503, "storage_unavailable")
    assert int(headers["Retry-After"]) > 0
    assert stack.sql("SELECT count(*) FROM uploads_image") == before
    stack.assert_integrity()
