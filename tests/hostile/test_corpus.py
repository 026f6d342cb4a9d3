"""Every case of the corpus gets its status and stable code in a JSON body, never a 5xx or a
page; a refused upload leaves no row, no stored object and no queued job; an accepted one has
its row, its original (same sha256) and one queued moderation job."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.storage import storages

from tests.conftest import queued_messages
from tests.hostile.corpus import BY_NAME, CORPUS
from uploads.models import Image, State

pytestmark = pytest.mark.django_db


def assert_json_error(response, status, code):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.content.decode()


@pytest.mark.parametrize("name", [c.name for c in CORPUS if not c.accepted])
def test_a_refused_upload_gets_its_code_and_leaves_nothing(send, name, assert_nothing_left):
    case = BY_NAME[name]

    response = send(case)

    assert_json_error(response, case.status, case.code)
    assert_nothing_left()


@pytest.mark.parametrize("name", [c.name for c in CORPUS if c.accepted])
def test_an_accepted_upload_is_stored_whole_and_queued(send, name, broker):
    case = BY_NAME[name]

    response = send(case)

    assert response.status_code == case.status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    image = Image.objects.get()
    assert response.json()["id"] == str(image.pk)
    assert image.state == State.RECEIVED
    with storages["default"].open(image.md5, "rb") as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == image.sha256
    assert queued_messages(broker) == 1
