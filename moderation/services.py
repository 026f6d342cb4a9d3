"""Automatic moderation of one image: blocklist, backend, policy, and the stored result."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings

from moderation import banks, blocklist, pdq
from moderation.backends import (
    Backend,
    Detection,
    Original,
    UnmoderatableImage,
    backend_path,
    get_backend,
)
from moderation.models import BankAction, ModerationResult, Trigger
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
        bank_match = banks.lookup(image.md5, _fingerprint(original, result), image=image)
        detection = _detect(backend, original, policy, result)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:2000]
        _save(result, started, record)
        raise
    decision = _decide(policy, detection, match, result)
    if bank_match is not None and not _same_source(match, bank_match):
        decision = _apply_bank_match(decision, bank_match, result)
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


def _fingerprint(original: Original, result: ModerationResult) -> pdq.PDQ | None:
    """The image's PDQ hash, stored with the result; None when it cannot be decoded."""
    try:
        fingerprint = banks.pdq_of_original(original)
    except UnmoderatableImage:
        return None  # the backend reports the decoding problem
    result.pdq, result.pdq_quality = fingerprint.hex, fingerprint.quality
    return fingerprint


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
        # The same bytes as a blocked image need no human; a look-alike might be a false match.
        exact = match.by == "sha256"
        rejects = exact or settings.BLOCKLIST_ACTION == "reject"
        action = State.REJECTED if rejects else State.IN_REVIEW
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
    why = f": {match.entry.reason}" if match.entry.reason else ""
    return f"blocklisted: {how} blocked image #{match.entry.pk}{of}{why}"


def _same_source(match: blocklist.Match | None, bank_match: banks.BankMatch) -> bool:
    """The built-in bank's entry for the blocked image the blocklist matched: said once."""
    return (
        match is not None
        and bank_match.entry.bank.builtin
        and bank_match.entry.source_image_id is not None
        and bank_match.entry.source_image_id == match.entry.source_image_id
    )


def _apply_bank_match(
    decision: Decision, match: banks.BankMatch, result: ModerationResult
) -> Decision:
    """The decision made at least as strict as the matched bank's action, saying why."""
    action = State.REJECTED if match.action == BankAction.REJECT else State.IN_REVIEW
    found = match.describe()
    outcome = stricter(decision.outcome, action)
    reason = found if decision.outcome == State.APPROVED else f"{decision.reason}; {found}"
    result.outcome, result.reason = outcome, reason[:2000]
    result.bank_entry, result.bank_distance = match.entry, match.distance
    details = {**decision.details, "bank": match.as_dict()}
    return Decision(outcome=outcome, reason=reason, details=details)


def _save(result: ModerationResult, started: float, record: bool) -> None:
    result.duration_ms = round((time.monotonic() - started) * 1000)
    if record:
        result.save()
