"""An image's life after its first decision, on the real topology (gunicorn + 2 Dramatiq workers
on Redis, PostgreSQL, S3, the PinsterApi stand-in), driven as an operator does: the
`takedown`, `restore` and `retry_failed` commands and plain re-uploads. A takedown is of the
content, a decision can be taken back, PinsterApi only hears what is still true, and a failed
image can be started again. Every test ends with `check_integrity --orphans` clean."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.faults.services import wait_until
from tests.faults.topology import BUCKET, Topology
from tests.photos import photo
from tests.pinster import Reply
from tests.services import s3_client

pytestmark = [pytest.mark.services, pytest.mark.slow]

PIPELINE = [
    ("received", "moderating"),
    ("moderating", "approved"),
    ("approved", "publishing"),
    ("publishing", "published"),
]
EXPLICIT = [{"Name": "Explicit Nudity", "Confidence": 99.5, "ParentName": ""}]


def upload(stack: Topology, data: bytes) -> str:
    status, _, body = stack.upload(data)
    assert status == 202, body
    return str(body["id"])


def published(stack: Topology, data: bytes) -> str:
    image_id = upload(stack, data)
    assert stack.wait_final([image_id]) == {image_id: "published"}
    return image_id


def md5_of(stack: Topology, image_id: str) -> str:
    return str(stack.sql("SELECT md5 FROM uploads_image WHERE id = %s", image_id)[0][0])


def public_keys(stack: Topology, md5: str) -> list[str]:
    listing = s3_client(stack.moto.url).list_objects_v2(Bucket=BUCKET, Prefix=md5)
    return [obj["Key"] for obj in listing.get("Contents", [])]


def notices(stack: Topology, image_id: str) -> list[tuple[str, str]]:
    rows = stack.sql(
        "SELECT kind, state FROM notifications_notification WHERE image_id = %s"
        " ORDER BY created_at",
        image_id,
    )
    return [(kind, state) for kind, state in rows]


def notice_ids(stack: Topology, image_id: str, kind: str) -> list[str]:
    rows = stack.sql(
        "SELECT id FROM notifications_notification WHERE image_id = %s AND kind = %s"
        " ORDER BY created_at",
        image_id,
        kind,
    )
    return [str(row[0]) for row in rows]


def delivered(stack: Topology, event_ids: list[str], timeout: float = 60) -> bool:
    return bool(
        wait_until(lambda: set(event_ids) <= set(stack.pinster.delivered_event_ids()), timeout)
    )


def blocked(stack: Topology, image_id: str) -> int:
    return int(
        stack.sql(
            "SELECT count(*) FROM moderation_blockedimage b JOIN uploads_image i"
            " ON b.sha256 = i.sha256 WHERE i.id = %s",
            image_id,
        )[0][0]
    )


@pytest.fixture(autouse=True)
def forget_blocked_content(stack: Topology) -> Iterator[None]:
    """The topology is shared with the other fault tests, which upload the same subjects: what
    these tests block is unblocked afterwards, and copies left in review are decided."""
    yield
    for (image_id,) in stack.sql("SELECT id FROM uploads_image WHERE state = 'in_review'"):
        decide_in_review(stack, str(image_id))
    stack.sql("UPDATE moderation_moderationresult SET blocked_image_id = NULL")
    stack.sql("DELETE FROM moderation_blockedimage")


def decide_in_review(stack: Topology, image_id: str) -> None:
    """A copy the blocklist sent to review is rejected, as a moderator would (every image of
    the shared topology must end final for the next test)."""
    if stack.state(image_id) != "in_review":
        return
    code = (
        "from uploads.models import Image; "
        f"assert Image.objects.get(pk='{image_id}').reject("
        "by=None, reason='a copy of blocked content', actor='system:test')"
    )
    status, out = stack.manage("shell", "-c", code)
    assert status == 0, out
    assert stack.wait_final([image_id]) == {image_id: "rejected"}


def test_a_takedown_takes_down_every_pin_of_the_same_bytes_each_told_and_blocks_them(stack):
    data = photo(800, 600, quality=71, subject="chelsea")
    first = published(stack, data)
    second = published(stack, data)  # another uploader's pin, the same bytes
    md5 = md5_of(stack, first)
    assert md5 == md5_of(stack, second) and public_keys(stack, md5)

    status, out = stack.manage("takedown", md5, "--reason", "Legal request", "--actor", "legal")

    assert status == 0, out
    assert stack.wait_final([first, second]) == {first: "taken_down", second: "taken_down"}
    for image_id in (first, second):
        assert stack.transitions(image_id) == [*PIPELINE, ("published", "taken_down")]
        (takedown,) = notice_ids(stack, image_id, "taken_down")
        assert delivered(stack, [takedown]), notices(stack, image_id)
    actors = stack.sql(
        "SELECT DISTINCT actor FROM uploads_imageevent WHERE to_state = 'taken_down'"
        " AND image_id IN (%s, %s)",
        first,
        second,
    )
    assert actors == [("system:legal",)]
    assert wait_until(lambda: not public_keys(stack, md5), 30), public_keys(stack, md5)
    assert blocked(stack, first) == 1

    # The same bytes for a third pin are never shown: the blocklist decides, no new approval.
    third = upload(stack, data)
    state = stack.wait_states([third], {"rejected", "in_review", "published"})[third]
    assert state == "rejected"  # the same bytes need no human
    reason = stack.sql("SELECT decision_reason FROM uploads_image WHERE id = %s", third)[0][0]
    assert "blocklisted: the same bytes as" in reason and first in reason, reason
    assert "taken down: Legal request" in reason
    assert not public_keys(stack, md5)
    time.sleep(6)  # public objects and originals are reported once older than STALE_AFTER
    stack.assert_integrity()


def test_a_restored_takedown_is_unblocked_published_again_and_pinster_told_anew(stack):
    data = photo(800, 600, quality=72, subject="rocket")
    image_id = published(stack, data)
    (first_approval,) = notice_ids(stack, image_id, "approved")
    assert delivered(stack, [first_approval])
    status, out = stack.manage("takedown", image_id, "--reason", "Reported by users")
    assert status == 0, out
    assert blocked(stack, image_id) == 1

    status, out = stack.manage("restore", image_id, "--reason", "Appeal upheld")

    assert status == 0, out
    assert stack.wait_final([image_id]) == {image_id: "published"}
    assert stack.transitions(image_id) == [
        *PIPELINE,
        ("published", "taken_down"),
        ("taken_down", "approved"),
        ("approved", "publishing"),
        ("publishing", "published"),
    ]
    assert blocked(stack, image_id) == 0
    approvals = notice_ids(stack, image_id, "approved")
    assert len(approvals) == 2 and approvals[0] == first_approval
    assert delivered(stack, approvals), notices(stack, image_id)
    md5 = md5_of(stack, image_id)
    assert md5 in public_keys(stack, md5)
    # Unblocked: the same bytes for another pin are published like any upload.
    assert published(stack, data)
    stack.assert_integrity()


def test_an_exact_re_upload_of_rejected_bytes_is_not_published_and_a_restore_publishes_it(stack):
    data = photo(800, 600, quality=73, subject="motorcycle")
    stack.rekognition.labels = EXPLICIT
    try:
        rejected = upload(stack, data)
        assert stack.wait_final([rejected]) == {rejected: "rejected"}
    finally:
        stack.rekognition.labels = []
    assert blocked(stack, rejected) == 1

    again = upload(stack, data)  # another pin; the backend would now approve these bytes
    state = stack.wait_states([again], {"rejected", "in_review", "published"})[again]
    assert state == "rejected"  # the same bytes: the blocklist decides, no human needed

    status, out = stack.manage("restore", rejected, "--reason", "Decided in error")
    assert status == 0, out
    assert stack.wait_final([rejected]) == {rejected: "published"}
    (approval,) = notice_ids(stack, rejected, "approved")
    assert delivered(stack, [approval])
    assert blocked(stack, rejected) == 0
    decide_in_review(stack, again)
    stack.assert_integrity()


def test_an_approval_waiting_for_pinster_is_never_delivered_once_the_image_is_taken_down(stack):
    stack.pinster.answer(*[Reply(503, retry_after="1")] * 1000)  # PinsterApi is down
    try:
        data = photo(800, 600, quality=74, subject="coffee")
        image_id = published(stack, data)
        (approval,) = notice_ids(stack, image_id, "approved")
        assert wait_until(
            lambda: any(r.event_id == approval for r in stack.pinster.requests()), 30
        ), "the approval was never attempted"

        status, out = stack.manage("takedown", image_id, "--reason", "Reported by users")
        assert status == 0, out
        time.sleep(3)  # attempts go on against the 503s
    finally:
        with stack.pinster._lock:
            stack.pinster._replies.clear()  # PinsterApi is back

    (takedown,) = notice_ids(stack, image_id, "taken_down")
    assert delivered(stack, [takedown]), notices(stack, image_id)
    assert notices(stack, image_id) == [("approved", "superseded"), ("taken_down", "delivered")]
    assert approval not in stack.pinster.delivered_event_ids()
    time.sleep(3)  # nothing comes late either
    assert approval not in stack.pinster.delivered_event_ids()
    reason = stack.sql(
        "SELECT failure_reason FROM notifications_notification WHERE id = %s", approval
    )[0][0]
    assert reason == "superseded: the image is taken_down now"
    stack.assert_integrity()


def failed_in_a_store_outage(stack: Topology, count: int, seed: int) -> list[str]:
    """Images whose publishing ran out of attempts while the store was down."""
    stack.rekognition.script, stack.rekognition.delay = ["slow"], 2.0
    calls = len(stack.rekognition.requests)
    ids = [upload(stack, photo(640, 480, quality=seed + n)) for n in range(count)]
    assert wait_until(lambda: len(stack.rekognition.requests) >= calls + count, 30)
    stack.s3.down()  # publishing can read nothing: its attempts run out
    try:
        stack.rekognition.script = ["ok"]
        assert stack.wait_states(ids, {"failed"}, timeout=240) == dict.fromkeys(ids, "failed")
    finally:
        stack.s3.up()
    return ids


def test_failed_images_are_started_again_by_a_re_upload_and_by_retry_failed(stack):
    by_upload, by_command = failed_in_a_store_outage(stack, 2, seed=50)
    pin = stack.sql("SELECT imageable_id FROM uploads_image WHERE id = %s", by_upload)[0][0]
    data = photo(640, 480, quality=50)

    status, _, body = stack.upload(data, imageable_id=pin)  # the same bytes, the same pin
    assert (status, body["id"]) == (202, by_upload), body
    status, out = stack.manage("retry_failed", "--image", by_command, "--since", "1h")
    assert status == 0, out

    assert stack.wait_final([by_upload, by_command]) == dict.fromkeys(
        [by_upload, by_command], "published"
    )
    for image_id in (by_upload, by_command):
        transitions = stack.transitions(image_id)
        assert transitions[-4:] == [
            ("publishing", "failed"),
            ("failed", "approved"),  # back at the stage that failed: moderation is not redone
            ("approved", "publishing"),
            ("publishing", "published"),
        ], transitions
    assert stack.sql(
        "SELECT actor FROM uploads_imageevent WHERE image_id = %s AND from_state = 'failed'",
        by_command,
    ) == [("system:retry_failed",)]
    stack.assert_integrity()
