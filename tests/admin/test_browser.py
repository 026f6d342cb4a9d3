"""A moderator's morning in a real browser: Debian's Chromium, driven by Playwright, against the
live server. Screenshots of the queue and the image page are kept for people to look at."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from moderation.models import BlockedImage, ModerationResult
from notifications.models import Notification
from tests.admin.conftest import create_image
from tests.admin.test_decisions import queued_actors
from tests.photos import photo
from tests.services import repo_root
from uploads.models import EventKind, ImageEvent, State

ARTIFACTS = repo_root() / "test-artifacts" / "admin"


def images_loaded(page: Any, selector: str) -> list[int]:
    """naturalWidth of every matching <img> once it has finished loading (0: broken)."""
    # Polled from Python, not page.wait_for_function: that evaluates a string in the page,
    # which the admin's Content-Security-Policy (no 'unsafe-eval') forbids.
    script = "sel => [...document.querySelectorAll(sel)].every(img => img.complete)"
    deadline = time.monotonic() + 30
    while not page.evaluate(script, selector):
        assert time.monotonic() < deadline, f"images {selector} did not load"
        page.wait_for_timeout(100)
    return page.eval_on_selector_all(selector, "imgs => imgs.map(img => img.naturalWidth)")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_moderator_reviews_the_queue_approves_one_image_and_rejects_another(
    live_server: Any, chromium: Any, broker: Any
) -> None:
    call_command("setup_roles", verbosity=0)
    moderator = User.objects.create_user("mia", password="mia-password-1", is_staff=True)
    moderator.groups.add(Group.objects.get(name="Moderators"))
    first = create_image(
        data=photo(1200, 800, subject="chelsea"),
        waited=timedelta(hours=3, minutes=12),
        labels=[
            {"name": "Suggestive", "parent": "", "confidence": 81.4},
            {"name": "Revealing Clothes", "parent": "Suggestive", "confidence": 64.0},
        ],
    )
    blocked_source = create_image(state=State.REJECTED, data=photo(800, 600, subject="rocket"))
    entry = BlockedImage.objects.create(
        sha256=blocked_source.sha256, source_image=blocked_source, reason="Spam or advertising"
    )
    second = create_image(
        data=photo(800, 1000, subject="rocket", quality=70),
        waited=timedelta(minutes=40),
        labels=[],
    )
    ModerationResult.objects.filter(image=second).update(
        blocked_image=entry, blocklist_distance=5, reason="looks like a blocked image"
    )
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\nscreenshots: {ARTIFACTS}")

    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(60_000)  # a loaded CI machine, not a hung page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "mia-password-1")
    page.click("input[type=submit]")
    assert page.inner_text("#queue-length") == "2"
    assert page.inner_text("#oldest-waiting") == "3h 12m"
    page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

    page.click("#moderation-dashboard >> text=Review queue")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert first.md5 not in rows.nth(1).inner_html()  # oldest first
    assert "Suggestive 81.4%" in rows.nth(0).inner_text()
    assert "Resembles blocked" in rows.nth(1).inner_text()
    assert all(width > 0 for width in images_loaded(page, "#result_list img"))
    page.screenshot(path=ARTIFACTS / "queue.png", full_page=True)

    rows.nth(0).locator("th a").click()
    page.wait_for_selector("#review-image")
    (width,) = images_loaded(page, "#review-image")
    assert width == 1200
    assert "Suggestive 81.4%" in page.inner_text("#moderation-results")
    page.screenshot(path=ARTIFACTS / "detail.png", full_page=True)

    page.click("input[name=approve]")
    page.wait_for_selector(".messagelist .success")
    assert f"Image {first.md5} is now approved." in page.inner_text(".messagelist")
    assert second.md5 in page.inner_text("#content")  # the next image in the queue
    page.screenshot(path=ARTIFACTS / "next-in-queue.png", full_page=True)

    page.select_option("#id_reject-reason", "Copy of someone else's image")
    page.fill("#id_reject-note", "the rocket again")
    page.click("input[name=reject]")
    page.wait_for_selector(".messagelist .success")
    assert f"Image {second.md5} is now rejected." in page.inner_text(".messagelist")
    page.screenshot(path=ARTIFACTS / "after-reject.png", full_page=True)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.decided_by) == (State.APPROVED, moderator)
    assert (second.state, second.decided_by) == (State.REJECTED, moderator)
    assert second.decision_reason == "Copy of someone else's image: the rocket again"
    decisions = ImageEvent.objects.filter(kind=EventKind.TRANSITION, actor="user:mia")
    assert sorted(decisions.values_list("to_state", flat=True)) == [
        State.APPROVED,
        State.REJECTED,
    ]
    assert ("make_thumbnails", [str(first.pk)]) in queued_actors(broker)
    assert Notification.objects.filter(image=second, kind=Notification.Kind.REJECTED).exists()
    assert BlockedImage.objects.filter(sha256=second.sha256, source_image=second).exists()
    for name in ("queue.png", "detail.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
