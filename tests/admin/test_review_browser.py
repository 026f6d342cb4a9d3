"""The review workspace in a real browser (Debian's Chromium, driven by Playwright) against the
live server: a queue cleared with the keyboard alone, two moderators working the same queue,
undo and skip, and a screenshot of every admin page at 1280x800 without horizontal scrolling
(kept under test-artifacts/ for people to look at)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from moderation.console.workspace import STANDARD_REASONS
from moderation.models import BlockedImage, ModerationResult, ReviewClaim
from notifications.models import Notification
from tests.admin.conftest import create_image
from tests.photos import photo
from tests.services import repo_root
from uploads.models import Image, ImageEvent, State

ARTIFACTS = repo_root() / "test-artifacts" / "admin" / "review"
PASSWORD = "review-password-1"
SUBJECTS = ("astronaut", "chelsea", "rocket", "coffee")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def moderator_named(name: str, group: str = "Moderators") -> User:
    call_command("setup_roles", verbosity=0)
    user = User.objects.create_user(name, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def queue_of(count: int) -> list[Image]:
    """`count` distinct photos waiting for review, oldest first; every third one flagged high
    enough to be blurred."""
    return [
        create_image(
            data=photo(640 + n, 480, subject=SUBJECTS[n % len(SUBJECTS)], quality=80),
            waited=timedelta(minutes=count - n),
            labels=[{"name": "Suggestive", "parent": "", "confidence": 95.0 if n % 3 else 60.0}],
        )
        for n in range(count)
    ]


def signed_in(browser: Any, url: str, name: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)  # a loaded machine, not a hung page
    page.goto(f"{url}/admin/login/?next=/admin/review/")
    page.fill("#id_username", name)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    return page


def shown(page: Any) -> str:
    """The id of the image on screen once it is fully loaded ("" when the queue is done)."""
    page.wait_for_function(
        """() => {
            const root = document.getElementById("review-workspace");
            if (!root.dataset.current) return !document.getElementById("review-empty").hidden;
            const item = document.querySelector("#review-current .review-item");
            return item && item.dataset.id === root.dataset.current
                && [...item.querySelectorAll("img")].every(img => img.complete);
        }"""
    )
    return page.eval_on_selector("#review-workspace", "root => root.dataset.current")


def next_shown(page: Any, before: str) -> str:
    page.wait_for_function(
        "before => document.getElementById('review-workspace').dataset.current !== before",
        arg=before,
    )
    return shown(page)


def all_sent(page: Any) -> None:
    page.wait_for_function(
        "() => document.getElementById('review-workspace').dataset.unsent === '0'"
    )


def decisions_of(image: Image) -> list[ImageEvent]:
    return list(ImageEvent.objects.filter(image=image, from_state=State.IN_REVIEW))


def test_a_moderator_clears_a_queue_of_thirty_with_the_keyboard_alone(
    live_server: Any, chromium: Any, broker: Any
) -> None:
    moderator = moderator_named("mia")
    images = queue_of(30)
    page = signed_in(chromium, live_server.url, "mia")
    keystrokes: list[int] = []
    plan: dict[str, str] = {}
    current = shown(page)
    assert page.inner_text("#review-position") == "1 of 30 ·"
    for n in range(30):
        assert current == str(images[n].pk)  # oldest first
        # The total is the server's count at the last fetch, less the decisions since.
        assert page.inner_text("#review-position").startswith(f"{n + 1} of ")
        if n % 3 == 2:
            reason = STANDARD_REASONS[n % len(STANDARD_REASONS)]
            keys = ["r", str(n % len(STANDARD_REASONS) + 1)]
        else:
            reason, keys = "", ["a"]
        for key in keys:
            page.keyboard.press(key)
        keystrokes.append(len(keys))
        plan[current] = reason
        current = next_shown(page, current)
    assert current == ""  # "Nothing left to review"
    assert page.is_visible("text=Nothing left to review")
    all_sent(page)

    assert max(keystrokes) <= 2 and sum(keystrokes) == 20 * 1 + 10 * 2
    for image in images:
        image.refresh_from_db()
        reason = plan[str(image.pk)]
        expected = State.REJECTED if reason else State.APPROVED
        assert (image.state, image.decided_by, image.decision_reason) == (
            expected,
            moderator,
            reason,
        )
        assert len(decisions_of(image)) == 1
    assert not ReviewClaim.objects.exists()
    assert Notification.objects.filter(kind=Notification.Kind.REJECTED).count() == 10
    timings = page.evaluate("window.reviewTimings")
    assert len(timings) == 29  # the last decision leaves nothing to show
    print(
        f"\nkeypress to next image shown: median {statistics.median(timings):.0f} ms, "
        f"max {max(timings):.0f} ms over {len(timings)} decisions"
    )


def test_two_moderators_in_two_browsers_never_see_the_same_image(
    live_server: Any, chromium: Any, broker: Any
) -> None:
    team = [moderator_named("mia"), moderator_named("noor")]
    images = queue_of(16)
    pages = [signed_in(chromium, live_server.url, user.username) for user in team]
    seen: list[list[str]] = [[], []]
    current = [shown(page) for page in pages]
    while any(current):
        for who, page in enumerate(pages):
            if not current[who]:
                continue
            seen[who].append(current[who])
            page.keyboard.press("a" if len(seen[who]) % 2 else "r")
            if len(seen[who]) % 2 == 0:
                page.keyboard.press("2")
            current[who] = next_shown(page, current[who])
    for page in pages:
        all_sent(page)

    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(str(image.pk) for image in images)
    assert len(seen[0]) >= 4 and len(seen[1]) >= 4  # both really worked the queue
    for image in images:
        (decision,) = decisions_of(image)
        expected = team[0] if str(image.pk) in seen[0] else team[1]
        assert decision.user == expected


def test_undo_brings_the_image_back_and_skip_leaves_it_for_someone_else(
    live_server: Any, chromium: Any, broker: Any
) -> None:
    moderator_named("mia")
    first, second = queue_of(2)
    page = signed_in(chromium, live_server.url, "mia")
    assert shown(page) == str(first.pk)
    page.keyboard.press("a")
    assert next_shown(page, str(first.pk)) == str(second.pk)
    page.keyboard.press("u")
    assert next_shown(page, str(second.pk)) == str(first.pk)
    assert "Undone" in page.inner_text("#review-status")
    page.keyboard.press("s")
    assert next_shown(page, str(first.pk)) == str(second.pk)
    page.keyboard.press("?")
    assert page.is_visible("#review-help")
    assert "reject with a standard reason" in page.inner_text("#review-help")
    page.keyboard.press("?")
    first.refresh_from_db()
    assert first.state == State.IN_REVIEW and not decisions_of(first)
    assert not ReviewClaim.objects.filter(image=first).exists()  # skipped: given back
    assert ReviewClaim.objects.filter(image=second).exists()  # on screen: held

    page.keyboard.press("r")
    page.keyboard.press("o")  # another reason, typed
    page.keyboard.type("a screenshot of someone's bank card")
    page.keyboard.press("Enter")
    assert next_shown(page, str(second.pk)) == ""
    all_sent(page)
    second.refresh_from_db()
    assert (second.state, second.decision_reason) == (
        State.REJECTED,
        "a screenshot of someone's bank card",
    )


def test_a_flagged_preview_stays_blurred_until_revealed(
    live_server: Any, chromium: Any, broker: Any
) -> None:
    moderator_named("mia")
    (image,) = queue_of(2)[1:]  # the second one is flagged at 95%
    page = signed_in(chromium, live_server.url, "mia")
    first = shown(page)
    assert "is-blurred" not in page.inner_html("#review-current")  # 60%: below the threshold
    page.keyboard.press("s")
    assert next_shown(page, first) == str(image.pk)
    frame = page.locator("#review-current .review-frame").first
    assert "is-blurred" in (frame.get_attribute("class") or "")
    filter_before = page.eval_on_selector(
        "#review-current .review-image", "i => getComputedStyle(i).filter"
    )
    assert "blur" in filter_before
    page.keyboard.press("v")
    assert "is-blurred" not in (frame.get_attribute("class") or "")
    page.keyboard.press("z")
    assert "is-zoomed" in (frame.get_attribute("class") or "")


def fits(page: Any, name: str) -> None:
    """Screenshot the page and assert it needs no horizontal scrolling, nor does its list."""
    page.evaluate(
        "document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')"
    )
    page.wait_for_function("() => [...document.images].every(img => img.complete)")
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{name}: {width} px wide in a {inner} px window"
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX))
            .filter(el => el.scrollWidth > el.clientWidth + 1)
            .map(el => el.id || el.className)"""
    )
    assert not overflow, f"{name}: {overflow} scroll sideways"


def test_every_admin_page_fits_1280_pixels(
    live_server: Any, chromium: Any, broker: Any, make_image: Callable[..., Image]
) -> None:
    moderator = moderator_named("mia")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    waiting = queue_of(12)
    source = create_image(data=photo(800, 600, subject="rocket"))
    source.reject(by=moderator, reason="Spam or advertising: a very long reason " * 4)
    entry = BlockedImage.objects.get(sha256=source.sha256)
    ModerationResult.objects.filter(image=waiting[0]).update(
        blocked_image=entry, blocklist_distance=4
    )
    page = signed_in(chromium, live_server.url, "mia")
    base = f"{live_server.url}/admin/"
    shown(page)
    fits(page, "workspace")
    screens = {
        "index": "",
        "list": "uploads/image/",
        "list-all": "uploads/image/?show=all",
        "detail": f"uploads/image/{source.pk}/change/",
        "history": "uploads/imageevent/",
        "blocklist": "moderation/blockedimage/",
        "results": "moderation/moderationresult/",
        "notifications": "notifications/notification/",
        "dashboard": "review/dashboard/",
        "grid": "review/grid/",
        "preferences": "review/preferences/",
        "refused": "uploads/imageevent/?image=notauuid",
    }
    for name, path in screens.items():
        page.goto(base + path)
        fits(page, name)
    assert "Bad request" in page.title()
    page.goto(base + "review/grid/")
    page.keyboard.press("x")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("x")
    page.keyboard.press("a")
    page.wait_for_selector("#grid-confirm")
    fits(page, "grid-confirm")
    assert "Approve 2 images?" in page.title()
    page.keyboard.press("Enter")
    page.wait_for_selector(".messagelist .success")
    assert "2 images approved." in page.inner_text(".messagelist")
    assert Image.objects.filter(state=State.APPROVED, decided_by=moderator).count() == 2
