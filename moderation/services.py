"""Automatic moderation of one image: blocklist, backend, policy, and the stored result."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings

from moderation import blocklist
from moderation.backends import (
    Backend,
    Detection,
    Original,
    UnmoderatableImage,
    backend_path,
    get_backend,
)
from moderation.models import ModerationResult, Trigger
from moderation.policy import Decision, Fired, Policy, current_policy, stricter
from uploads.models import Image, State

log = logging.getLogger(__name__)

__all__ = ["Decision", "moderate"]


def moderate(
    image: Image,
    *,
    backend: Backend | None = None,
    record: bool = True,
    trigger: Trigger = Trigger.PIPELINE,
) -> Decision:
    """Decide whether `image` is approved, sent to review or rejected, and store the result.

    Fails closed: a permanent error (an image the backend can never judge) is a decision to
    review; any other error is stored and raised, so the actor retries and finally gives the
    image to a human. Only a clean backend answer that no rule and no blocklist entry objects
    to approves. `record=False` stores nothing (a dry run).
    """
    started = time.monotonic()
    backend = backend or get_backend()
    policy = current_policy()
    original = Original(image)
    result = ModerationResult(
        image=image, backend=backend_path(backend), policy=policy.as_dict(), trigger=trigger
    )
    try:
        match = _blocklist_match(image, original)
        detection = _detect(backend, original, policy, result)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:2000]
        _save(result, started, record)
        raise
    decision = _decide(policy, detection, match, result)
    _save(result, started, record)
    decision.details["result_id"] = result.pk
    return decision


def _blocklist_match(image: Image, original: Original) -> blocklist.Match | None:
    try:
        hashes = blocklist.perceptual_hashes(original.upright(blocklist.HASH_DECODE_SIZE))
    except UnmoderatableImage:
        hashes = []  # still matched by sha256; the backend reports the decoding problem
    blocklist.remember(image.sha256, hashes)  # for the blocklist entry if it is rejected
    return blocklist.lookup(image.sha256, hashes, settings.BLOCKLIST_MAX_DISTANCE, image=image)


def _detect(
    backend: Backend, original: Original, policy: Policy, result: ModerationResult
) -> Detection | None:
    """The backend's labels; None when it can never judge this image (error recorded)."""
    try:
        detection = backend.detect(original, min_confidence=policy.request_confidence)
    except UnmoderatableImage as exc:
        result.error = str(exc)[:2000]
        return None
    result.model_version = detection.model_version[:200]
    result.labels = [label.as_dict() for label in detection.labels]
    result.raw = detection.raw
    return detection


def _decide(
    policy: Policy,
    detection: Detection | None,
    match: blocklist.Match | None,
    result: ModerationResult,
) -> Decision:
    fired: list[Fired] = []
    if detection is None:
        outcome, reason = State.IN_REVIEW, f"not moderated automatically: {result.error}"
    else:
        outcome, reason, fired = policy.decide(detection.labels)
    details: dict[str, Any] = {
        "backend": result.backend,
        "model_version": result.model_version,
        "labels": result.labels,
        "fired": [t.describe() for t in fired],
    }
    if result.error:
        details["error"] = result.error
    if match is not None:
        action = State.REJECTED if settings.BLOCKLIST_ACTION == "reject" else State.IN_REVIEW
        blocked = _describe_match(match)
        reason = blocked if outcome == State.APPROVED else f"{reason}; {blocked}"
        outcome = stricter(outcome, action)
        details["blocklist"] = match.as_dict()
        result.blocked_image = match.entry
        result.blocklist_distance = match.distance
    result.outcome, result.reason = outcome, reason[:2000]
    return Decision(outcome=outcome, reason=reason, details=details)


def _describe_match(match: blocklist.Match) -> str:
    how = "the same bytes as" if match.by == "sha256" else f"{match.distance} bits from"
    source = match.entry.source_image_id
    of = f" (rejected image {source})" if source else ""
    return f"blocklisted: {how} blocked image #{match.entry.pk}{of}"


def _save(result: ModerationResult, started: float, record: bool) -> None:
    result.duration_ms = round((time.monotonic() - started) * 1000)
    if record:
        result.save()
