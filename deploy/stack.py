#!/usr/bin/env python3
"""The production topology without containers: nginx in front of gunicorn web + Dramatiq workers
against PostgreSQL, Redis and an S3-compatible server, on this machine.

    .venv/bin/python deploy/stack.py                   # local PostgreSQL and Redis, moto S3
    .venv/bin/python deploy/stack.py --port 8080 --workers 3 --create-database
    .venv/bin/python deploy/stack.py --s3-endpoint http://127.0.0.1:9000 --bucket images

It starts moto_server on loopback (unless --s3-endpoint names a server), creates the bucket,
creates the database if asked, runs the migrations and collectstatic, starts gunicorn on an
internal loopback port, nginx (Debian's package) in front of it on --port with
deploy/nginx.conf.template (slow-client timeouts, the body limit, a request rate per client),
and the workers (each its own `manage.py rundramatiq` with its own metrics port), waits for
/readyz through nginx, prints the URLs, and runs until Ctrl-C or SIGTERM; then it stops
everything it started, nginx and web first, and exits 0. A worker instance that exits is started
again (Dramatiq's main process exits, after its other processes finish their tasks, when one of
them is killed, e.g. by the OOM killer); one that exits more than MAX_RESTARTS times in a minute,
or any other process that dies, stops the rest and the stack exits 1. Every other setting comes
from the environment, as in production (MODERATION_BACKEND, IMAGE_SERVICE_URL, ...: see
docs/operations.md). Without SECRET_KEY, API_PUBLIC_KEY and PRIVATE_KEY it uses development ones
made in --var-dir (ALLOW_DEV_SECRETS=true); without METRICS_TOKEN it makes one (in --state-file).
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
NGINX_TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
TEMPLATE_VARIABLE = re.compile(r"\$\{(NGINX_[A-Z_]+)\}")
# The settings' defaults, for the nginx limits when the environment does not set them.
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_CORS_ORIGINS = "http://localhost:3000,http://127.0.0.1:3000"
MAX_RESTARTS = 5  # per worker instance per minute, as a crash loop's limit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:.0f}s")
        time.sleep(0.2)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Child:
    """A process of the stack, in its own process group so that stopping it stops its children
    (gunicorn's workers, Dramatiq's worker and fork processes) too."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: IO[Any] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: list[float] = field(default_factory=list)  # monotonic times of recent restarts

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log else None,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """SIGTERM to the leader alone: gunicorn and Dramatiq pass it on to their processes, and
        a second SIGTERM would make a Dramatiq worker quit without finishing its tasks."""
        if self.alive():
            assert self.process is not None
            self.process.terminate()

    def kill_group(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = Path(args.var_dir).resolve()
        self.nginx_temp: Path | None = None  # nginx's temporary files when run as root
        self.children: list[Child] = []
        self.stopping = False
        self.web_port = args.port or free_port()
        self.gunicorn_port = free_port() if args.proxy else self.web_port
        self.s3_endpoint = args.s3_endpoint
        self.worker_ports = [free_port() for _ in range(args.workers)]
        self.metrics_token = os.environ.get("METRICS_TOKEN") or secrets.token_urlsafe(24)

    # --- configuration ------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="imageservice.settings",
            VAR_DIR=str(self.run_dir),
            DATABASE_URL=self.args.database_url,
            BROKER_URL=self.args.redis_url,
            CACHE_URL=self.args.cache_url or self.args.redis_url,
            BUCKET_NAME=self.args.bucket,
            AWS_S3_ENDPOINT_URL=self.s3_endpoint or "",
            PORT=str(self.gunicorn_port),
            GUNICORN_BIND=f"127.0.0.1:{self.gunicorn_port}",
            WEB_CONCURRENCY=str(self.args.web_workers),
            METRICS_TOKEN=self.metrics_token,
            # Forwarding headers are believed from nginx alone, on loopback.
            FORWARDED_ALLOW_IPS="127.0.0.1",
            TRUSTED_PROXIES="127.0.0.1",
        )
        env.setdefault("IMAGE_SERVICE_URL", f"http://127.0.0.1:{self.web_port}")
        if not env.get("SECRET_KEY"):
            env.setdefault("ALLOW_DEV_SECRETS", "true")  # the files infra.devsetup made
        env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")  # moto takes any credentials
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        env.setdefault("LOG_FORMAT", "json")
        env.update(extra)
        return env

    def log_file(self, name: str) -> IO[Any] | None:
        if not self.args.log_dir:
            return None
        directory = Path(self.args.log_dir)
        directory.mkdir(parents=True, exist_ok=True)
        return (directory / f"{name}.log").open("ab")

    def metrics_dir(self, name: str) -> str:
        directory = self.run_dir / "prometheus" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return str(directory)

    # --- steps --------------------------------------------------------------------------

    def start_s3(self) -> None:
        if self.s3_endpoint:
            return
        binary = shutil.which("moto_server") or str(Path(PYTHON).parent / "moto_server")
        port = free_port()
        child = Child("s3", [binary, "-H", "127.0.0.1", "-p", str(port)], dict(os.environ))
        child.log = self.log_file("s3")
        if child.log is None:
            child.log = open(os.devnull, "wb")  # noqa: SIM115 (closed with the process)
        self.launch(child)
        wait_for(lambda: port_open(port), "moto_server", 30)
        self.s3_endpoint = f"http://127.0.0.1:{port}"

    def create_bucket(self) -> None:
        import boto3

        env = self.env()
        client = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=env.get("AWS_S3_REGION_NAME", "us-east-1"),
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if self.args.bucket not in existing:
            client.create_bucket(Bucket=self.args.bucket)

    def create_database(self) -> None:
        import psycopg
        from psycopg import sql

        parts = urlsplit(self.args.database_url)
        name = parts.path.lstrip("/")
        admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if found is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def manage_module(self, module: str, *args: str) -> None:
        """`python -m module args` in the project, with the stack's environment."""
        subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=self.env(), check=True)

    def manage(self, *command: str) -> None:
        done = subprocess.run(
            [PYTHON, "manage.py", *command],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(command)} failed:\n{done.stderr[-3000:]}")

    def start_web(self) -> None:
        env = self.env(PROMETHEUS_MULTIPROC_DIR=self.metrics_dir("web"))
        argv = [PYTHON, "-m", "gunicorn", "imageservice.wsgi", "-c", "gunicorn.conf.py"]
        self.launch(Child("web", argv, env, self.log_file("web")))

    def nginx_variables(self) -> dict[str, str]:
        env = self.env()
        image_bytes = int(env.get("MAX_IMAGE_BYTES") or DEFAULT_MAX_IMAGE_BYTES)
        body_bytes = env.get("MAX_REQUEST_BYTES") or str(image_bytes * 4 // 3 + 64 * 1024)
        origins = env.get("CORS_ALLOWED_ORIGINS") or DEFAULT_CORS_ORIGINS
        pattern = "|".join(re.escape(o.strip()) for o in origins.split(",") if o.strip())
        return {
            "NGINX_PORT": f"127.0.0.1:{self.web_port}",
            "NGINX_UPSTREAM": f"127.0.0.1:{self.gunicorn_port}",
            "NGINX_MAX_BODY_BYTES": body_bytes,
            "NGINX_RATE": self.args.proxy_rate,
            "NGINX_BURST": str(self.args.proxy_burst),
            "NGINX_CORS_ORIGINS": pattern or "(?!)",
        }

    def write_nginx_config(self) -> Path:
        """The template rendered as envsubst would, inside a main configuration that keeps the
        pid file, temporary files and logs in the run folder."""
        folder = self.run_dir / "nginx"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        user, temp_root = "", folder
        if os.geteuid() == 0:
            # nginx's workers drop root, and a run folder made by mkdtemp (mode 0700, like a
            # test's tmp_path) is closed to them: a body over client_body_buffer_size could not
            # be buffered (a 500 for every upload over 1 MiB). Their temporary files go to a
            # folder of their own under the system's temporary directory, removed by down().
            temp_root = self.nginx_temp = Path(tempfile.mkdtemp(prefix="imageservice-nginx-"))
            user = "user nobody nogroup;"
        temp = [temp_root / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")]
        for path in temp:
            path.mkdir(parents=True)
        if user:
            nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
            for path in [temp_root, *temp]:
                os.chown(path, nobody, nogroup)
        variables = self.nginx_variables()
        site = TEMPLATE_VARIABLE.sub(lambda m: variables[m[1]], NGINX_TEMPLATE.read_text())
        (folder / "imageservice.conf").write_text(site)
        main = f"""{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {temp[0]};
    proxy_temp_path {temp[1]};
    fastcgi_temp_path {temp[2]};
    uwsgi_temp_path {temp[3]};
    scgi_temp_path {temp[4]};
    include {folder}/imageservice.conf;
}}
"""
        (folder / "nginx.conf").write_text(main)
        return folder / "nginx.conf"

    def start_proxy(self) -> None:
        if not self.args.proxy:
            return
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is not installed (apt-get install nginx), or use --no-proxy")
        config = self.write_nginx_config()
        argv = [binary, "-e", "stderr", "-c", str(config), "-g", "daemon off;"]
        test = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx rejected its configuration:\n{test.stderr}")
        self.launch(Child("nginx", argv, dict(os.environ), self.log_file("nginx")))

    def start_workers(self) -> None:
        for number, port in enumerate(self.worker_ports, start=1):
            name = f"worker-{number}"
            env = self.env(
                PROMETHEUS_MULTIPROC_DIR=self.metrics_dir(name),
                WORKER_METRICS_PORT=str(port),
                WORKER_METRICS_ADDR="127.0.0.1",
            )
            argv = [
                PYTHON,
                "manage.py",
                "rundramatiq",
                "--skip-logging",  # Django's LOGGING (JSON) instead of Dramatiq's text format
                "--processes",
                str(self.args.processes),
                "--threads",
                str(self.args.threads),
                "--worker-shutdown-timeout",
                str(self.args.shutdown_timeout * 1000),
            ]
            self.launch(Child(name, argv, env, self.log_file(name)))

    def launch(self, child: Child) -> None:
        child.start()
        self.children.append(child)

    def ready(self) -> bool:
        self.check_alive()
        try:
            url = f"{self.web_url}/readyz"  # always http on loopback
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def check_alive(self) -> None:
        if self.stopping:
            raise RuntimeError("stopped while starting")
        for child in self.children:
            if not child.alive():
                code = child.process.returncode if child.process else None
                raise RuntimeError(f"{child.name} exited with status {code}")

    def supervise(self) -> list[str]:
        """Start again each worker instance whose main process exited; returns their names.
        Raises RuntimeError when another process died or a worker keeps exiting."""
        restarted = []
        for child in self.children:
            if child.alive() or self.stopping:
                continue
            code = child.process.returncode if child.process else None
            if not child.name.startswith("worker"):
                raise RuntimeError(f"{child.name} exited with status {code}")
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > MAX_RESTARTS:
                raise RuntimeError(f"{child.name} exited {MAX_RESTARTS + 1} times in a minute")
            print(
                f"stack: {child.name} exited with status {code}; starting it again",
                file=sys.stderr,
                flush=True,
            )
            self.restart(child)
            restarted.append(child.name)
        return restarted

    def restart(self, child: Child) -> None:
        child.kill_group()  # whatever of its group outlived its main process
        child.wait(5)
        if "PROMETHEUS_MULTIPROC_DIR" in child.env:  # the dead processes' counters go
            child.env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir(child.name)
        child.start()

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def up(self) -> None:
        self.manage_module("infra.devsetup", "--var-dir", str(self.run_dir))
        self.start_s3()
        self.create_bucket()
        if self.args.create_database:
            self.create_database()
        self.manage("migrate", "--noinput")
        self.manage("setup_roles")
        self.manage("collectstatic", "--noinput")  # as the image does at build time
        self.start_web()
        self.start_proxy()
        self.start_workers()
        wait_for(self.ready, "web (/readyz)", self.args.start_timeout)
        for port in self.worker_ports:
            wait_for(lambda p=port: self.worker_up(p), "worker metrics", 60)

    def worker_up(self, port: int) -> bool:
        self.check_alive()
        return port_open(port)

    def describe(self) -> dict[str, Any]:
        return {
            "web": self.web_url,
            "readyz": f"{self.web_url}/readyz",
            "metrics": f"{self.web_url}/metrics",
            "metrics_token": self.metrics_token,
            "gunicorn": f"http://127.0.0.1:{self.gunicorn_port}",
            "workers": [f"http://127.0.0.1:{port}/metrics" for port in self.worker_ports],
            "s3": self.s3_endpoint,
            "bucket": self.args.bucket,
            "database": without_password(self.args.database_url),
            "broker": without_password(self.args.redis_url),
            "var_dir": str(self.run_dir),
            "pids": {child.name: child.pid for child in self.children},
        }

    def down(self) -> None:
        """nginx and web first (no new uploads), then the workers (they finish what they hold
        and give the rest back to Redis), then the S3 server."""
        order = sorted(self.children, key=lambda c: {"web": 0, "s3": 2}.get(c.name, 1))
        for group in (
            [c for c in order if c.name in ("nginx", "web")],
            [c for c in order if c.name.startswith("worker")],
            [c for c in order if c.name == "s3"],
        ):
            for child in group:
                child.terminate()
            deadline = time.monotonic() + self.args.shutdown_timeout + 5
            for child in group:
                if not child.wait(max(0.1, deadline - time.monotonic())):
                    print(f"stack: {child.name} did not stop in time; killing it", file=sys.stderr)
                # and whatever of its group outlived it
                child.kill_group()
                child.wait(5)
            for child in group:
                if child.log is not None:
                    child.log.close()
        if self.nginx_temp is not None:
            shutil.rmtree(self.nginx_temp, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(env("PORT", "8000")), help="web port")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--workers", type=int, default=2, help="rundramatiq instances")
    parser.add_argument("--processes", type=int, default=1, help="processes per worker instance")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument(
        "--database-url",
        default=env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imageservice"),
    )
    parser.add_argument(
        "--create-database", action="store_true", help="create the database if it is missing"
    )
    parser.add_argument("--redis-url", default=env("BROKER_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--cache-url", default=env("CACHE_URL", ""), help="default: the broker's")
    parser.add_argument(
        "--s3-endpoint",
        default=env("AWS_S3_ENDPOINT_URL", ""),
        help="an S3-compatible server; default: start moto_server on loopback",
    )
    parser.add_argument("--bucket", default=env("BUCKET_NAME", "imageservice"))
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "stack"))
    parser.add_argument("--log-dir", default="", help="one log file per process, not the terminal")
    parser.add_argument("--state-file", default="", help="write the URLs and pids here as JSON")
    parser.add_argument("--start-timeout", type=float, default=90)
    parser.add_argument("--shutdown-timeout", type=int, default=30, help="seconds per tier")
    parser.add_argument(
        "--no-proxy",
        dest="proxy",
        action="store_false",
        help="gunicorn directly on --port, without nginx in front (not for production)",
    )
    parser.add_argument("--proxy-rate", default="50r/s", help="nginx: requests per client")
    parser.add_argument("--proxy-burst", type=int, default=200, help="nginx: burst per client")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = Stack(args)
    stop_requested = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = stack.stopping = True

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    status = 0
    try:
        stack.up()
        described = stack.describe()
        if args.state_file:
            Path(args.state_file).write_text(json.dumps(described, indent=2))
        print("ImageService is up (Ctrl-C stops it):", flush=True)
        for name in ("web", "readyz", "metrics", "s3", "database", "broker"):
            print(f"  {name:9} {described[name]}", flush=True)
        for number, url in enumerate(described["workers"], start=1):
            print(f"  worker {number}  {url}", flush=True)
        while not stop_requested:
            stack.supervise()
            time.sleep(0.5)
    except RuntimeError as exc:
        if not stop_requested:
            print(f"stack: {exc}", file=sys.stderr, flush=True)
            status = 1
    except TimeoutError as exc:
        print(f"stack: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown
        stack.down()
        print("ImageService stopped.", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
