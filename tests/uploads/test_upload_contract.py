"""The requests the Pinster web frontend sends today, and the bodies it reads back."""

from __future__ import annotations

import pytest

from tests.conftest import queued_messages
from tests.photos import photo
from tests.uploads.conftest import data_url, stored_keys, use_local_storage
from uploads.models import EventKind, Image, State

pytestmark = pytest.mark.django_db

EXAMPLE_BODY = {
    "data": {
        "image": "base64 encoded image",
        "name": "Optional name of image",
        "description": "Optional description",
        "featured": "Optional ISO8601 format",
    }
}


def test_the_frontends_data_url_upload_is_accepted_and_queued_for_moderation(post, jpeg, broker):
    response = post({"data": {"image": data_url(jpeg)}})

    assert response.status_code == 202
    body = response.json()
    image = Image.objects.get()
    assert body["id"] == str(image.pk)
    assert body["state"] == "received"
    assert body["md5"] == image.md5
    assert body["status_url"].endswith(f"/api/v1/images/{image.pk}")
    assert response["Location"] == body["status_url"]
    assert (image.user_id, image.imageable_type) == (
        "8b0d3c1e-5a3f-4f7e-9d1a-2c3b4d5e6f70",
        "Pin",
    )
    assert image.imageable_id == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    assert (image.format, image.width, image.height) == ("JPEG", 640, 480)
    assert image.byte_size == len(jpeg)
    assert queued_messages(broker) == 1
    assert broker.queues["moderation"].qsize() == 1


def test_the_original_is_stored_privately_under_its_md5(post, jpeg):
    import hashlib

    from django.core.files.storage import storages

    post({"data": {"image": data_url(jpeg)}})

    md5 = hashlib.md5(jpeg).hexdigest()
    with storages["default"].open(md5, "rb") as stored:
        assert stored.read() == jpeg
    assert not storages["public"].exists(md5)
    image = Image.objects.get()
    assert image.sha256 == hashlib.sha256(jpeg).hexdigest()


def test_local_storage_writes_the_original_in_one_piece(post, settings, tmp_path, monkeypatch):
    from django.core.files.storage import FileSystemStorage

    use_local_storage(settings, tmp_path)
    big = photo(1600, 1200, quality=95)
    assert len(big) > 4 * 64 * 1024  # several of the 64 KiB chunks Django writes by default
    pieces = []
    save = FileSystemStorage._save

    def counting_save(storage, name, content):
        pieces.append(sum(1 for _ in content.chunks()))
        return save(storage, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", counting_save)
    assert post({"data": {"image": data_url(big)}}).status_code == 202
    assert pieces == [1]
    with open(tmp_path / "private" / Image.objects.get().md5, "rb") as stored:
        assert stored.read() == big


def test_the_api_path_behaves_like_the_root_path(post, jpeg):
    response = post({"data": {"image": data_url(jpeg)}}, path="/api/v1/images/")
    assert response.status_code == 202


def test_bare_base64_without_a_data_url_prefix_is_accepted(post, jpeg):
    response = post({"data": {"image": data_url(jpeg).split(",", 1)[1]}})
    assert response.status_code == 202


def test_a_multipart_upload_is_accepted_with_the_same_optional_fields(post, jpeg):
    from django.core.files.uploadedfile import SimpleUploadedFile

    file = SimpleUploadedFile("cat.jpg", jpeg, content_type="image/jpeg")
    response = post({"image": file, "name": "My cat"}, fmt="multipart")

    assert response.status_code == 202
    assert Image.objects.get().name == "My cat"


def test_optional_fields_are_cleaned_as_the_old_service_did(post, jpeg):
    response = post(
        {
            "data": {
                "image": data_url(jpeg),
                "name": "  <b>Sunset</b> over_the bay!  ",
                "description": "Taken at 7pm. Isn't it great? <script>",
                "featured": "2019-05-16T02:03:37+0000",
            }
        }
    )

    assert response.status_code == 202
    image = Image.objects.get()
    assert image.name == "bSunsetb over_the bay"
    assert image.description == "Taken at 7pm. Isnt it great? script"
    assert image.featured.isoformat() == "2019-05-16T02:03:37+00:00"


@pytest.mark.parametrize(
    "body",
    [{}, {"data": {}}, {"data": {"name": "only a name"}}, {"data": {"image": ""}}, {"data": "x"}],
)
def test_missing_data_or_image_gets_the_legacy_body_with_a_code(post, body, assert_nothing_left):
    response = post(body)

    assert response.status_code == 400
    assert response.json() == {
        "error": "Bad Request. Required fields are missing.",
        "example_body": EXAMPLE_BODY,
        "code": "missing_fields",
    }
    assert_nothing_left()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "ab"),
        ("name", "x" * 141),
        ("name", "!!!!!"),
        ("description", "  a "),
        ("description", 42),
        ("featured", "yesterday"),
        ("featured", "2019-05-16T02:03:37"),
    ],
)
def test_invalid_optional_fields_get_the_legacy_errors_body(
    post, jpeg, field, value, assert_nothing_left
):
    response = post({"data": {"image": data_url(jpeg), field: value}})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_fields"
    assert list(body["errors"]["data"]) == [field]
    assert isinstance(body["errors"]["data"][field], str)
    assert_nothing_left()


def test_uploading_the_same_bytes_for_the_same_pin_returns_the_existing_image(post, jpeg, broker):
    first = post({"data": {"image": data_url(jpeg)}})
    second = post({"data": {"image": data_url(jpeg)}})

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert Image.objects.count() == 1
    assert queued_messages(broker) == 1
    # The repeat is answered from the unique constraint: nothing else was recorded or stored.
    assert Image.objects.get().events.count() == 1
    assert len(stored_keys()) == 1


def test_the_same_bytes_for_another_pin_is_a_second_image_sharing_one_original(
    post, api, make_token, jpeg
):
    post({"data": {"image": data_url(jpeg)}})
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token()}")
    response = post({"data": {"image": data_url(jpeg)}})

    assert response.status_code == 202
    assert Image.objects.count() == 2
    assert len(stored_keys()) == 1


def test_an_upload_records_who_uploaded_it_in_the_history(post, jpeg):
    post({"data": {"image": data_url(jpeg)}})

    event = Image.objects.get().events.get()
    assert event.kind == EventKind.UPLOADED
    assert event.to_state == State.RECEIVED
    assert event.actor == "uploader:8b0d3c1e-5a3f-4f7e-9d1a-2c3b4d5e6f70"


def test_the_cors_preflight_is_answered_for_the_frontend_origin(client):
    response = client.options(
        "/",
        HTTP_ORIGIN="http://localhost:3000",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "http://localhost:3000"
    allowed = response["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_an_unknown_origin_gets_no_cors_grant(client):
    response = client.options(
        "/",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in response


def test_the_status_endpoint_shows_the_uploader_their_image(post, api, jpeg):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]

    response = api.get(f"/api/v1/images/{image_id}")

    assert response.status_code == 200
    assert response.json()["state"] == "received"
    assert response.json()["thumbnails"] == {}


def test_the_status_endpoint_hides_other_peoples_images(post, api, make_token, jpeg):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token()}")

    response = api.get(f"/api/v1/images/{image_id}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_png_upload_keeps_its_real_content_type(post):
    png = photo(300, 200, fmt="PNG")
    response = post({"data": {"image": data_url(png, "image/png")}})

    assert response.status_code == 202
    assert Image.objects.get().content_type == "image/png"
