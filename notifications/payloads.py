"""The JSON bodies we send, built when the decision is taken (docs/contract.md §4)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.files.storage import storages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, transaction

from uploads.models import Image

log = logging.getLogger(__name__)

EVENT_NAMES = {"rejected": "image.rejected", "taken_down": "image.taken_down"}


def body_for(image: Image, kind: str, event_id: str) -> dict[str, Any]:
    is_approval = kind == "approved"
    body = approved_body(image) if is_approval else rejection_body(image, kind, event_id)
    # Whatever the moderation results hold (decimals, dates) is stored exactly as it will be sent.
    return json.loads(json.dumps(body, cls=DjangoJSONEncoder))


def approved_body(image: Image) -> dict[str, Any]:
    """Exactly the body PinsterApi's `POST /v1/images/` takes."""
    return {
        "data": {
            "imageable_type": image.imageable_type,
            "imageable_id": image.imageable_id,
            "base_file_name": image.md5,
            "storage_location_uri": storages["public"].url(image.original_key),
            "thumbnailable": True,
            "name": image.name,
            "description": image.description,
            "featured": image.featured,
        }
    }


def rejection_body(image: Image, kind: str, event_id: str) -> dict[str, Any]:
    """What the uploader's side needs to explain a rejection or a takedown."""
    return {
        "data": {
            "event": EVENT_NAMES[kind],
            "event_id": event_id,
            "imageable_type": image.imageable_type,
            "imageable_id": image.imageable_id,
            "user_id": image.user_id,
            "image_id": str(image.pk),
            "base_file_name": image.md5,
            "reason": image.decision_reason,
            "labels": moderation_labels(image),
            "decided_at": image.state_changed_at,
        }
    }


def moderation_labels(image: Image) -> list[Any]:
    """The labels of the image's latest moderation result: from the moderation app's results
    when it keeps them, else from the audit events. Never fails the decision it is part of."""
    try:
        with transaction.atomic():  # a savepoint: a failed query must not poison the decision
            labels = _labels_from_results(image)
            if labels is None:
                labels = _labels_from_events(image)
    except (DatabaseError, AttributeError, TypeError, ValueError) as exc:
        log.warning("no moderation labels for image %s: %s", image.pk, exc)
        return []
    return list(labels or [])


def _labels_from_results(image: Image) -> Any:
    results = getattr(image, "moderation_results", None)
    if results is None:
        return None
    names = {field.name for field in results.model._meta.get_fields()}
    newest = next((f"-{name}" for name in ("created_at", "at") if name in names), "-pk")
    if "outcome" in names:
        results = results.exclude(outcome="")  # a run that errored decided nothing
    latest = results.order_by(newest).first()
    return getattr(latest, "labels", None)


def _labels_from_events(image: Image) -> Any:
    event = image.events.filter(details__has_key="labels").order_by("-at", "-id").first()
    return event.details["labels"] if event is not None else None
