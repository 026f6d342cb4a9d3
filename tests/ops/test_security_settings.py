"""Production settings come from the environment alone: each case boots the real settings module
in a fresh process with only the variables an operator would set."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from infra.devsetup import ensure_dev_files
from tests.services import repo_root

PRINT_SETTINGS = """
import json, django
from django.conf import settings
from django.urls import reverse
django.setup()
print(json.dumps({
    name: getattr(settings, name) for name in (
        "DEBUG", "ALLOWED_HOSTS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT",
        "SECURE_PROXY_SSL_HEADER", "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS",
    )
} | {"admin": reverse("admin:index")}))
"""


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What an operator sets: the secret and both keys (made here as development files, then
    given through the environment as production gives them)."""
    keys = tmp_path / "var" / "keys"
    ensure_dev_files(tmp_path / "var")
    env = {
        "API_PUBLIC_KEY": base64.b64encode((keys / "pinster_public.pem").read_bytes()).decode(),
        "PRIVATE_KEY": base64.b64encode((keys / "service_private.pem").read_bytes()).decode(),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "imageservice.settings",
        "VAR_DIR": str(tmp_path / "var"),
        "IMAGE_SERVICE_URL": "https://images.example.com",
        "PINSTER_API_URL": "https://api.example.com",
        "ALLOWED_HOSTS": "images.example.com",
        "SECRET_KEY": secrets.token_urlsafe(60),
    }
    env.update(overrides)
    return env


def run_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def boot(env: dict[str, str]) -> dict[str, Any]:
    done = run_settings(env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("missing", ["SECRET_KEY", "API_PUBLIC_KEY", "PRIVATE_KEY"])
def test_production_refuses_to_start_without_a_secret_though_a_development_one_exists(
    tmp_path: Path, missing: str
) -> None:
    env = production_env(tmp_path)
    del env[missing]

    done = run_settings(env)

    assert done.returncode != 0
    assert f"{missing} is not set" in done.stderr


@pytest.mark.parametrize("flag", ["DEBUG", "ALLOW_DEV_SECRETS"])
def test_the_development_files_stand_in_with_debug_or_when_allowed(
    tmp_path: Path, flag: str
) -> None:
    env = production_env(tmp_path, **{flag: "true"})
    for name in ("SECRET_KEY", "API_PUBLIC_KEY", "PRIVATE_KEY"):
        del env[name]

    assert boot(env)["DEBUG"] is (flag == "DEBUG")


def test_behind_tls_cookies_are_secure_hsts_is_on_and_debug_is_off(tmp_path: Path) -> None:
    values = boot(production_env(tmp_path))
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["images.example.com"]
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["admin"] == "/admin/"


def test_debug_and_the_admin_path_follow_the_environment(tmp_path: Path) -> None:
    values = boot(production_env(tmp_path, DEBUG="true", ADMIN_PATH="/staff-only-7f3a/"))
    assert values["DEBUG"] is True
    assert values["admin"] == "/staff-only-7f3a/"


def test_plain_http_for_development_sets_no_secure_cookies_or_hsts(tmp_path: Path) -> None:
    values = boot(production_env(tmp_path, IMAGE_SERVICE_URL="http://127.0.0.1:8000"))
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] is None


def test_djangos_deployment_checks_find_nothing_but_the_opt_in_hsts_preload(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security"],
        cwd=repo_root(),
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = {
        line.split(")")[0].split("(")[-1]
        for line in done.stderr.splitlines()
        if "(security." in line
    }
    assert found == {"security.W021"}, done.stderr


@pytest.mark.django_db
def test_responses_carry_nosniff_and_deny_framing(client: Client) -> None:
    for path in ("/healthz", "/api/v1/images/"):
        response = client.get(path)
        assert response["X-Content-Type-Options"] == "nosniff", path
    assert client.get("/api/v1/images/")["X-Frame-Options"] == "DENY"


WSGI_START = "import imageservice.wsgi; print('started')"


def start_wsgi(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WSGI_START],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_a_broker_the_web_process_refuses_to_start_its_own_worker(tmp_path: Path) -> None:
    env = production_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")

    done = start_wsgi(env)

    assert done.returncode != 0
    assert "BROKER_URL is not set" in done.stderr


def test_without_a_broker_the_embedded_worker_starts_when_asked(tmp_path: Path) -> None:
    env = production_env(
        tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", EMBEDDED_WORKER="true"
    )

    done = start_wsgi(env)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "started" in done.stdout
