"""The OpenAPI schema describes the real request and response shapes and the error codes."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_valid_openapi(schema):
    validate(schema)


def test_the_upload_takes_the_contracts_json_body_or_multipart(schema):
    upload = schema["paths"]["/api/v1/images/"]["post"]
    content = upload["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    json_body = schema["components"]["schemas"]["UploadJson"]
    assert json_body["properties"]["data"]["$ref"].endswith("/UploadFields")
    assert "/" in schema["paths"]


def test_every_error_status_names_its_codes_and_the_error_shape(schema):
    responses = schema["paths"]["/api/v1/images/"]["post"]["responses"]
    for status_code in ("400", "401", "403", "413", "415", "422", "429", "503"):
        assert "`" in responses[status_code]["description"]
        ref = responses[status_code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/Error")
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"code", "error"}


def test_the_docs_page_renders(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"redoc" in response.content.lower()
