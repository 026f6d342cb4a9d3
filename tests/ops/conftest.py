from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter that never moved has no labelled sample)."""
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@contextmanager
def database_unreachable() -> Iterator[None]:
    """Connections opened from now on, in threads without one yet, go to a closed port."""
    config: dict[str, Any] = connections.settings["default"]
    saved = {key: config.get(key) for key in ("HOST", "PORT", "OPTIONS")}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    if config["ENGINE"].endswith("sqlite3"):  # whose connect() takes no connect_timeout
        saved["NAME"] = config["NAME"]
        config["NAME"] = "/nonexistent/dir/db.sqlite3"
    else:
        config.update(HOST="127.0.0.1", PORT=str(closed_port), OPTIONS={"connect_timeout": 2})
    try:
        yield
    finally:
        config.update(saved)


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a dependency that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


def in_thread(func: Any, timeout: float = 30) -> Any:
    """Run `func` in a new thread (which opens its own database connection); return its result."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(func())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{func} did not finish within {timeout}s"
    if errors:
        raise errors[0]
    return result[0]
