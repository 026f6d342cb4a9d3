"""Tokens and keys never reach the recorded attempts, the timeline or the logs, even when the
receiver echoes our Authorization header back in its error."""

from __future__ import annotations

import json
import logging

import pytest
from django.conf import settings

from notifications.models import Notification
from notifications.tasks import notify_pinster
from tests.notifications.conftest import Clock, publish
from tests.pinster import PinsterApi, Reply

pytestmark = pytest.mark.django_db


def recorded_text(notification: Notification) -> str:
    notification.refresh_from_db()
    attempts = notification.delivery_attempts.values_list("error", "response_snippet")
    events = notification.image.events.values_list("reason", "details")
    return json.dumps([notification.failure_reason, list(attempts), list(events)], default=str)


def test_tokens_and_keys_never_appear_in_attempts_timeline_or_logs(
    pinster: PinsterApi, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pinster.answer(Reply(500, echo_token=True), Reply(400, echo_token=True))
    notification = publish()
    notify_pinster(notification.event_id)
    notification.refresh_from_db()
    clock.now = notification.next_attempt_at
    notify_pinster(notification.event_id)

    tokens = [received.token for received in pinster.requests()]
    assert len(tokens) == 2
    assert all(tokens)
    recorded = recorded_text(notification)
    assert "bad request with Authorization:" in recorded  # it was echoed: the test can fail
    key_lines = [line for line in settings.PRIVATE_KEYS[0].splitlines() if "-----" not in line]
    for text in (recorded, caplog.text):
        for token in tokens:
            assert token not in text
            assert token.rsplit(".", 1)[1] not in text  # not even the signature alone
        assert not any(line in text for line in key_lines)
    assert notification.state == Notification.State.FAILED
