"""The admin's login is throttled and locks out, the admin and the API docs carry a strict
Content-Security-Policy, the docs' assets come from the service itself, and forwarding headers
are believed only from the proxy."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from infra.middleware import from_trusted_proxy

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("staff", password="right-password-1", is_staff=True)


def attempt(client: Client, password: str, address: str = "10.0.0.1") -> Any:
    return client.post(
        LOGIN,
        {"username": "staff", "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def test_the_admin_login_locks_out_after_the_failure_limit_even_with_the_right_password(
    client: Client, staff: User, settings: Any
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "wrong").status_code == 200  # the form again, with an error

    assert attempt(client, "wrong").status_code == 429
    assert attempt(client, "right-password-1").status_code == 429


def test_a_lockout_is_per_username_and_address(client: Client, staff: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong", address="10.0.0.1")

    assert attempt(Client(), "right-password-1", address="10.0.0.2").status_code == 302


def test_a_successful_login_resets_the_count(client: Client, staff: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "wrong")
    assert attempt(client, "right-password-1").status_code == 302
    client.logout()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "wrong").status_code == 200


def test_a_forged_forwarded_for_from_a_client_does_not_escape_a_lockout(
    client: Client, staff: User, settings: Any
) -> None:
    for number in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            LOGIN,
            {"username": "staff", "password": "wrong"},
            REMOTE_ADDR="203.0.113.9",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{number}",
        )

    response = client.post(
        LOGIN,
        {"username": "staff", "password": "right-password-1"},
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="198.51.100.200",
    )
    assert response.status_code == 429


def test_forwarding_headers_are_believed_only_from_trusted_proxies(settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.1.0.0/16"]
    assert from_trusted_proxy("127.0.0.1")
    assert from_trusted_proxy("10.1.2.3")
    assert not from_trusted_proxy("10.2.0.1")
    assert not from_trusted_proxy("not an address")


def policy(response: Any) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.mark.parametrize("path", [LOGIN, "/api/docs/"])
def test_the_admin_and_the_docs_forbid_inline_and_foreign_scripts(
    client: Client, path: str
) -> None:
    response = client.get(path)

    assert response.status_code == 200
    directives = policy(response)
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in directives["default-src"]


def test_the_admin_pages_have_no_inline_script(client: Client, staff: User) -> None:
    client.force_login(staff)
    for path in (LOGIN, "/admin/", "/admin/password_change/"):
        html = client.get(path).content.decode()
        for script in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in script or 'type="application/json"' in script, (path, script)


def test_the_api_docs_load_redoc_from_our_own_static_files(client: Client) -> None:
    html = client.get("/api/docs/").content.decode()

    sources = re.findall(r'<script src="([^"]+)"', html)
    assert sources and all(src.startswith("/static/") for src in sources), sources
    assert "cdn" not in html and "googleapis" not in html
    assert client.get(sources[0]).status_code == 200
    assert not re.search(r"<script>(?!</script>)", html)  # no inline script
