"""What follows a transition, registered by the apps that do it.

The core does not import the apps built on it. Each of them registers, in its
`AppConfig.ready()`, the steps that must follow an image's arrival in a state (the next stage
is enqueued, a rejection or a takedown is blocklisted, an approval is written to the outbox, a
takedown's public objects are removed). A step may be limited to arrivals from some states
(`from_states`): a restore (rejected or taken down → approved) unblocks the bytes, an
automatic or a moderator's approval does not. Steps run in registration order, inside the
transition's transaction: a step that raises rolls the transition back. `registered()` lists
them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

# A step takes the uploads.models.Image that just moved (typed loosely: models import this).
Step = Callable[[Any], object]


class Moved(Protocol):
    state: str


@dataclass(frozen=True)
class Registered:
    name: str
    step: Step
    from_states: frozenset[str] | None  # None: from any state

    def applies(self, from_state: str) -> bool:
        return self.from_states is None or from_state in self.from_states


_steps: dict[str, list[Registered]] = {}


def after(state: str, name: str, step: Step, *, from_states: Iterable[str] | None = None) -> None:
    """Run `step(image)` after every transition into `state` (only from `from_states` when
    given). Safe to call twice with the same name (a second `ready()` in tests replaces, never
    duplicates)."""
    limit = None if from_states is None else frozenset(str(s) for s in from_states)
    steps = [entry for entry in _steps.setdefault(state, []) if entry.name != name]
    steps.append(Registered(name, step, limit))
    _steps[state] = steps


def run_after(image: Moved, from_state: str = "") -> None:
    for entry in _steps.get(image.state, ()):
        if entry.applies(from_state):
            entry.step(image)


def registered() -> dict[str, list[str]]:
    """{state: [step names in the order they run]}, for the docs and the tests; a step limited
    to some previous states is listed as `name (from a, b)`."""
    return {
        state: [_describe(entry) for entry in steps] for state, steps in _steps.items() if steps
    }


def _describe(entry: Registered) -> str:
    if entry.from_states is None:
        return entry.name
    return f"{entry.name} (from {', '.join(sorted(entry.from_states))})"
