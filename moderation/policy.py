"""The moderation policy: which labels, at which confidence, reject an image or send it to review.

A policy has two tables, `reject` and `review`, mapping a label name to the confidence (0-100)
at or above which it triggers. A rule names a label or any of its ancestors (Rekognition's
ParentName), or "*" for every label. Rules add up: the strictest outcome any label triggers
wins; an image no rule triggers is approved. Backends are asked for labels from `min_confidence`
(or the lowest threshold, if lower), so results also record labels that fired no rule.

MODERATION_POLICY (JSON) changes the defaults table by table: `{"review": {"NSFW": 30}}` moves
one threshold, `{"review": {"*": null}}` removes a rule, `{"reject": {"*": 99}}` restores the
old service's "reject anything at 99%".
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from moderation.backends import Label
from uploads.models import State

# Rekognition's explicit categories (taxonomy v6 "Explicit Nudity", v7 "Explicit") and the
# local model's single label. The old service rejected any label at >= 99%: explicit content
# at that confidence still is; every other label at 99% now goes to a human, and explicit
# content the machine is less sure of (>= 80%, or open_nsfw >= 40%) does too.
EXPLICIT = ("Explicit Nudity", "Explicit")
DEFAULT_POLICY: dict[str, Any] = {
    "min_confidence": 50,
    "reject": {**dict.fromkeys(EXPLICIT, 99), "NSFW": 99},
    "review": {"*": 99, **dict.fromkeys(EXPLICIT, 80), "NSFW": 40},
}
SEVERITY = {State.APPROVED: 0, State.IN_REVIEW: 1, State.REJECTED: 2}


@dataclass(frozen=True)
class Decision:
    """What automatic moderation decided: the new state, why, and details for the audit."""

    outcome: State  # APPROVED, IN_REVIEW or REJECTED
    reason: str
    details: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable


def stricter(a: State, b: State) -> State:
    return a if SEVERITY[a] >= SEVERITY[b] else b


@dataclass(frozen=True)
class Fired:
    label: str
    confidence: float
    rule: str
    threshold: float
    outcome: State

    def describe(self) -> str:
        via = "" if self.rule == self.label else f" (rule {self.rule!r})"
        verb = "reject" if self.outcome == State.REJECTED else "review"
        return f"{self.label} {self.confidence:.1f}% >= {verb} threshold {self.threshold:g}{via}"


@dataclass(frozen=True)
class Policy:
    min_confidence: float
    reject: dict[str, float]
    review: dict[str, float]

    @property
    def request_confidence(self) -> float:
        return min([self.min_confidence, *self.reject.values(), *self.review.values()])

    def as_dict(self) -> dict[str, Any]:
        return {"min_confidence": self.min_confidence, "reject": self.reject, "review": self.review}

    def decide(self, labels: Iterable[Label]) -> tuple[State, str, list[Fired]]:
        """(outcome, reason, the rules that fired, strictest first)."""
        labels = list(labels)
        parents = {label.name: label.parent for label in labels}
        fired: list[Fired] = []
        for label in labels:
            names = [label.name, *_ancestors(label, parents), "*"]
            fired += _fire(label, names, self.reject, State.REJECTED) or _fire(
                label, names, self.review, State.IN_REVIEW
            )
        fired.sort(key=lambda t: (-SEVERITY[t.outcome], -t.confidence))
        if not fired:
            return State.APPROVED, "no label at or above its policy threshold", []
        worst = fired[0].outcome
        reason = "; ".join(t.describe() for t in fired if t.outcome == worst)
        return worst, reason, fired


def _ancestors(label: Label, parents: dict[str, str]) -> list[str]:
    found: list[str] = []
    parent = label.parent
    while parent and parent not in found and len(found) < 8:
        found.append(parent)
        parent = parents.get(parent, "")
    return found


def _fire(label: Label, names: list[str], table: dict[str, float], outcome: State) -> list[Fired]:
    for name in names:
        threshold = table.get(name)
        if threshold is not None and label.confidence >= threshold:
            return [Fired(label.name, label.confidence, name, threshold, outcome)]
    return []


def current_policy() -> Policy:
    return parse_policy(settings.MODERATION_POLICY)


@cache
def parse_policy(text: str) -> Policy:
    """The default policy changed by the JSON in `text` (MODERATION_POLICY)."""
    merged = copy.deepcopy(DEFAULT_POLICY)
    if text.strip():
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"MODERATION_POLICY is not JSON: {exc}") from None
        if not isinstance(overrides, dict) or set(overrides) - set(DEFAULT_POLICY):
            raise ImproperlyConfigured(
                "MODERATION_POLICY must be an object with keys min_confidence, reject, review"
            )
        for key, value in overrides.items():
            if key == "min_confidence":
                merged[key] = value
            elif isinstance(value, dict):
                merged[key].update(value)
            else:
                raise ImproperlyConfigured(f"MODERATION_POLICY {key} must map labels to 0-100")
    return Policy(
        min_confidence=_confidence("min_confidence", merged["min_confidence"]),
        reject=_table("reject", merged["reject"]),
        review=_table("review", merged["review"]),
    )


def _table(name: str, table: dict[str, Any]) -> dict[str, float]:
    return {label: _confidence(f"{name}.{label}", v) for label, v in table.items() if v is not None}


def _confidence(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        message = f"MODERATION_POLICY {name} must be a number 0-100, not {value!r}"
        raise ImproperlyConfigured(message)
    return float(value)
