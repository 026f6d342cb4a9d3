"""The process-wide decode budget: decodes that would hold more pixels than it allows wait."""

from __future__ import annotations

import threading

import pytest

from publishing import imaging
from publishing.thumbnails import Size, render_thumbnails
from tests.photos import photo


def hold_in_thread(
    budget: imaging.PixelBudget, pixels: int
) -> tuple[threading.Event, threading.Event]:
    """Start a thread that holds `pixels`; returns (entered, release)."""
    entered, release = threading.Event(), threading.Event()

    def run() -> None:
        with budget.hold(pixels):
            entered.set()
            release.wait(10)

    threading.Thread(target=run, daemon=True).start()
    return entered, release


def test_a_decode_that_would_exceed_the_budget_waits_until_pixels_are_released():
    budget = imaging.PixelBudget(100)
    first, release_first = hold_in_thread(budget, 80)
    assert first.wait(5)

    second, release_second = hold_in_thread(budget, 30)
    small, release_small = hold_in_thread(budget, 20)

    assert small.wait(5), "20 more pixels fit beside 80"
    assert not second.wait(0.3), "30 more do not"
    release_first.set()
    assert second.wait(5)
    release_second.set()
    release_small.set()


def test_a_decode_larger_than_the_whole_budget_runs_alone_instead_of_never():
    budget = imaging.PixelBudget(100)
    other, release_other = hold_in_thread(budget, 10)
    assert other.wait(5)

    huge, release_huge = hold_in_thread(budget, 1_000)

    assert not huge.wait(0.3)
    release_other.set()
    assert huge.wait(5)
    assert budget.held == 100
    release_huge.set()


class Recording(imaging.PixelBudget):
    def __init__(self) -> None:
        super().__init__(10**9)
        self.asked: list[int] = []

    def hold(self, pixels: int):  # type: ignore[no-untyped-def, override]
        self.asked.append(pixels)
        return super().hold(pixels)


@pytest.mark.parametrize(
    ("fmt", "decoded"),
    [("JPEG", 300 * 200), ("PNG", 2400 * 1600)],  # JPEG shrinks on load (1/8), PNG cannot
)
def test_rendering_holds_the_pixels_it_decodes(monkeypatch, fmt, decoded):
    budget = Recording()
    monkeypatch.setattr(imaging, "DECODE_BUDGET", budget)

    render_thumbnails(photo(2400, 1600, fmt=fmt), [Size(200, 200)], formats=("JPEG",))

    assert budget.asked == [decoded]
    assert budget.held == 0
