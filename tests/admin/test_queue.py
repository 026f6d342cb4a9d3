"""The review queue: what a moderator sees in each row, the filters and the search, and a
constant number of queries whatever the number of rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.admin.conftest import bulk_images, client_for
from uploads.models import Image, State

pytestmark = pytest.mark.django_db


def rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr")[1:]


def queries_for(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_the_queue_lists_images_in_review_oldest_first(moderator: User, make_image: Any) -> None:
    newer = make_image(waited=timedelta(minutes=2))
    older = make_image(waited=timedelta(hours=3))
    make_image(state=State.PUBLISHED)
    html = client_for(moderator).get("/admin/uploads/image/").content.decode()
    listed = rows(html)
    assert len(listed) == 2
    assert str(older.pk) in listed[0] and str(newer.pk) in listed[1]


def test_a_queue_row_shows_preview_uploader_imageable_waiting_time_and_labels(
    moderator: User, make_image: Any
) -> None:
    image = make_image(
        waited=timedelta(hours=2, minutes=5),
        labels=[
            {"name": "Suggestive", "parent": "", "confidence": 91.26},
            {"name": "Revealing Clothes", "parent": "Suggestive", "confidence": 80.0},
        ],
    )
    (row,) = rows(client_for(moderator).get("/admin/uploads/image/").content.decode())
    assert f"/admin/uploads/image/{image.pk}/preview/?size=thumb" in row
    assert image.user_id in row
    assert (
        f'Pin<br><small class="ident" title="{image.imageable_id}">{image.imageable_id}</small>'
        in row
    )
    assert "2h 5m" in row
    assert "Suggestive <b>91.3%</b>" in row
    assert "Revealing Clothes <b>80.0%</b>" in row


def test_a_blocklist_hit_shows_the_blocked_image_it_resembles(
    moderator: User, make_image: Any
) -> None:
    from moderation.models import BlockedImage, ModerationResult

    source = make_image(state=State.REJECTED)
    entry = BlockedImage.objects.create(sha256=source.sha256, source_image=source, reason="x")
    image = make_image(with_result=False)
    ModerationResult.objects.create(
        image=image,
        backend="moderation.backends.TestBackend",
        outcome=State.IN_REVIEW,
        blocked_image=entry,
        blocklist_distance=6,
    )
    (row,) = rows(client_for(moderator).get("/admin/uploads/image/").content.decode())
    assert f"/admin/moderation/blockedimage/{entry.pk}/change/" in row
    assert "distance 6" in row
    assert f"/admin/uploads/image/{source.pk}/preview/?size=thumb" in row


def test_user_supplied_values_are_escaped(moderator: User, make_image: Any) -> None:
    make_image(
        user_id="<script>alert(1)</script>",
        labels=[{"name": "<img src=x onerror=alert(2)>", "parent": "", "confidence": 50}],
    )
    html = client_for(moderator).get("/admin/uploads/image/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x onerror" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("show=all", {"review", "published", "failed"}),
        ("show=published", {"published"}),
        ("label=Violence", {"review"}),
        ("label=Graphic+Violence", {"review"}),
        ("show=all&backend=moderation.backends.RekognitionBackend", {"published"}),
        ("backend=moderation.backends.RekognitionBackend", set()),
        ("show=all&created_at__gte=2001-01-01+00:00Z&created_at__lt=2001-01-02+00:00Z", {"failed"}),
    ],
)
def test_filters_by_state_label_backend_and_date(
    moderator: User, make_image: Any, query: str, expected: set[str]
) -> None:
    from datetime import UTC, datetime

    images = {
        "review": make_image(
            labels=[{"name": "Graphic Violence", "parent": "Violence", "confidence": 70}]
        ),
        "published": make_image(
            state=State.PUBLISHED, backend="moderation.backends.RekognitionBackend"
        ),
        "failed": make_image(state=State.FAILED),
    }
    Image.objects.filter(pk=images["failed"].pk).update(
        created_at=datetime(2001, 1, 1, 12, tzinfo=UTC)
    )
    html = client_for(moderator).get(f"/admin/uploads/image/?{query}").content.decode()
    shown = {name for name, image in images.items() if str(image.pk) in html}
    assert shown == expected


@pytest.mark.parametrize("field", ["md5", "sha256", "user_id", "imageable_id", "pk"])
def test_search_finds_an_image_by_exact_hash_or_id(
    moderator: User, make_image: Any, field: str
) -> None:
    wanted = make_image(state=State.PUBLISHED)
    other = make_image(state=State.PUBLISHED)
    value = str(getattr(wanted, field))
    html = client_for(moderator).get("/admin/uploads/image/", {"show": "all", "q": value})
    assert str(wanted.pk) in html.content.decode()
    assert str(other.pk) not in html.content.decode()


@pytest.mark.parametrize("url", ["/admin/uploads/image/", "/admin/uploads/image/?show=all"])
def test_the_image_list_makes_the_same_number_of_queries_for_10_and_500_images(
    moderator: User, url: str
) -> None:
    client = client_for(moderator)
    client.get(url)  # session and permission caches warm
    bulk_images(10)
    with_10 = queries_for(client, url)
    bulk_images(490)
    assert Image.objects.count() > 500
    with_500 = queries_for(client, url)
    assert with_10 == with_500
    assert with_500 <= 12


def test_the_history_makes_the_same_number_of_queries_for_10_and_500_images(
    auditor: User,
) -> None:
    client = client_for(auditor)
    url = "/admin/uploads/imageevent/"
    client.get(url)
    bulk_images(10)
    with_10 = queries_for(client, url)
    bulk_images(490)
    with_500 = queries_for(client, url)
    assert with_10 == with_500
    assert with_500 <= 10


def test_the_results_and_blocklist_lists_make_a_constant_number_of_queries(
    moderator: User,
) -> None:
    client = client_for(moderator)
    urls = ("/admin/moderation/moderationresult/", "/admin/moderation/blockedimage/")
    for url in urls:
        client.get(url)
    bulk_images(10)
    with_10 = [queries_for(client, url) for url in urls]
    bulk_images(490)
    assert [queries_for(client, url) for url in urls] == with_10


def test_a_row_whose_automatic_moderation_failed_says_why(moderator: User, make_image: Any) -> None:
    make_image(with_result=False, failure_reason="moderation gave up after 3 attempts")
    (row,) = rows(client_for(moderator).get("/admin/uploads/image/").content.decode())
    assert "Automatic moderation failed:" in row
    assert "moderation gave up after 3 attempts" in row
