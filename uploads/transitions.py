"""What follows a transition, registered by the apps that do it.

The core does not import the apps built on it. Each of them registers, in its
`AppConfig.ready()`, the steps that must follow an image's arrival in a state (the next stage
is enqueued, a rejection is blocklisted, an approval is written to the outbox, a takedown's
public objects are removed). Steps run in registration order, inside the transition's
transaction: a step that raises rolls the transition back. `registered()` lists them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# A step takes the uploads.models.Image that just moved (typed loosely: models import this).
Step = Callable[[Any], object]


class Moved(Protocol):
    state: str


_steps: dict[str, list[tuple[str, Step]]] = {}


def after(state: str, name: str, step: Step) -> None:
    """Run `step(image)` after every transition into `state`. Safe to call twice with the same
    name (a second `ready()` in tests replaces, never duplicates)."""
    steps = [entry for entry in _steps.setdefault(state, []) if entry[0] != name]
    steps.append((name, step))
    _steps[state] = steps


def run_after(image: Moved) -> None:
    for _name, step in _steps.get(image.state, ()):
        step(image)


def registered() -> dict[str, list[str]]:
    """{state: [step names in the order they run]}, for the docs and the tests."""
    return {state: [name for name, _ in steps] for state, steps in _steps.items() if steps}
