"""The audit history: browsable per image, per uploader and per moderator, by date and kind,
and exported as a streamed CSV of exactly what the list shows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse

from tests.admin.conftest import client_for
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db
HISTORY = "/admin/uploads/imageevent/"


@pytest.fixture
def two_uploads(make_image: Any, moderator: User) -> tuple[Image, Image]:
    first = make_image(user_id="uploader-a")
    second = make_image(user_id="uploader-b")
    first.approve(by=moderator)
    return first, second


def listed_events(client: Any, query: str) -> set[int]:
    response = client.get(f"{HISTORY}?{query}")
    assert response.status_code == 200
    return {event.pk for event in response.context["cl"].result_list}


def ids(queryset: Any) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def test_an_images_timeline_shows_only_its_events(
    auditor: User, two_uploads: tuple[Image, Image]
) -> None:
    first, _ = two_uploads
    shown = listed_events(client_for(auditor), f"image={first.pk}")
    assert shown == ids(ImageEvent.objects.filter(image=first))
    assert len(shown) == 3


def test_an_uploaders_history_shows_the_events_of_their_images(
    auditor: User, two_uploads: tuple[Image, Image]
) -> None:
    _, second = two_uploads
    assert listed_events(client_for(auditor), "uploader=uploader-b") == ids(second.events)


def test_a_moderators_history_shows_their_decisions(
    auditor: User, moderator: User, two_uploads: tuple[Image, Image]
) -> None:
    first, _ = two_uploads
    shown = listed_events(client_for(auditor), f"moderator={moderator.pk}")
    assert shown == ids(ImageEvent.objects.filter(image=first, to_state=State.APPROVED))
    assert listed_events(client_for(auditor), "actor=user:mod") == shown
    assert listed_events(client_for(auditor), "by=user") == shown
    assert listed_events(client_for(auditor), "q=user:mod") == shown


def test_the_history_filters_by_kind_and_date(
    auditor: User, two_uploads: tuple[Image, Image]
) -> None:
    old = ImageEvent.objects.create(
        image=two_uploads[1],
        at=datetime(2020, 5, 1, 12, tzinfo=UTC),
        kind=EventKind.RECONCILED,
        actor="system:reconciler",
    )
    client = client_for(auditor)
    assert listed_events(client, "kind__exact=reconciled") == {old.pk}
    query = "at__gte=2020-05-01+00:00:00%2B00:00&at__lt=2020-05-02+00:00:00%2B00:00"
    assert listed_events(client, query) == {old.pk}
    assert old.pk not in listed_events(client, "at__gte=2021-01-01+00:00:00%2B00:00")


def test_searching_the_history_by_md5_finds_that_images_events(
    auditor: User, two_uploads: tuple[Image, Image]
) -> None:
    first, _ = two_uploads
    assert listed_events(client_for(auditor), f"q={first.md5}") == ids(first.events)


def test_the_history_is_newest_first_with_links_to_image_uploader_and_actor(
    auditor: User, two_uploads: tuple[Image, Image]
) -> None:
    first, _ = two_uploads
    response = client_for(auditor).get(f"{HISTORY}?image={first.pk}")
    events = list(response.context["cl"].result_list)
    assert [e.at for e in events] == sorted((e.at for e in events), reverse=True)
    page = response.content.decode()
    assert f"/admin/uploads/image/{first.pk}/change/" in page
    assert f"{HISTORY}?uploader=uploader-a" in page
    assert f"{HISTORY}?actor=user%3Amod" in page
    assert f"/admin/uploads/imageevent/export/?image={first.pk}" in page


def read_csv(response: Any) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_streams_the_filtered_history_as_csv(
    auditor: User, moderator: User, two_uploads: tuple[Image, Image]
) -> None:
    first, _ = two_uploads
    response = client_for(auditor).get(f"{HISTORY}export/?image={first.pk}")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="image-events-')
    rows = read_csv(response)
    assert len(rows) == 3
    assert {row["image_id"] for row in rows} == {str(first.pk)}
    decision = rows[0]  # newest first, as listed
    assert decision["to_state"] == State.APPROVED
    assert decision["actor"] == "user:mod"
    assert decision["md5"] == first.md5 and decision["uploader"] == "uploader-a"
    assert datetime.fromisoformat(decision["at"]) > datetime.now(UTC) - timedelta(minutes=1)


def test_the_export_of_a_long_history_holds_every_row(auditor: User, make_image: Any) -> None:
    image = make_image()
    ImageEvent.objects.bulk_create(
        ImageEvent(image=image, kind=EventKind.RETRY, actor="system:moderate_image", reason=str(n))
        for n in range(4500)  # more than two chunks of the export's iterator
    )
    rows = read_csv(client_for(auditor).get(f"{HISTORY}export/?kind__exact=retry"))
    assert sorted(int(row["reason"]) for row in rows) == list(range(4500))


def test_the_export_keeps_spreadsheets_from_running_formulas(
    auditor: User, make_image: Any
) -> None:
    image = make_image()
    ImageEvent.objects.create(
        image=image, kind=EventKind.TRANSITION, actor="user:x", reason='=HYPERLINK("http://e.vil")'
    )
    rows = read_csv(client_for(auditor).get(f"{HISTORY}export/?image={image.pk}"))
    assert '\'=HYPERLINK("http://e.vil")' in {row["reason"] for row in rows}
