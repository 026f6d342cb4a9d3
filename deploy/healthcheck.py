"""The image's HEALTHCHECK, for every role: exit 0 when healthy, 1 (with the reason) when not.

- web (a gunicorn master runs): `GET /healthz` on $PORT answers 200.
- worker (a Dramatiq main process runs): each of its worker processes is alive (not a zombie,
  not stopped), as many as `--processes` asked for; with WORKER_METRICS_PORT set, the metrics
  server answers too.
- anything else (a one-shot command): nothing to check.

Standard library only, no Django: it runs every few seconds and must cost next to nothing.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_SECONDS = 4
ROLES = ("gunicorn", "dramatiq")


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    state: str
    argv: tuple[str, ...]

    @property
    def program(self) -> str:
        """`gunicorn` or `dramatiq` when this process runs one of them (directly, as a script
        through its interpreter, or with `python -m`), else its executable's name."""
        names = [Path(arg).name for arg in self.argv[:3]]
        return next((name for name in names if name in ROLES), names[0] if names else "")


def processes(proc: Path = Path("/proc")) -> list[Process]:
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        args = tuple(arg.decode(errors="replace") for arg in argv if arg)
        found.append(Process(int(entry.name), int(ppid), state, args))
    return found


def main_process(table: list[Process]) -> Process | None:
    """The outermost gunicorn or Dramatiq process (its children run the same program)."""
    pids = {p.pid: p for p in table}
    for process in sorted(table, key=lambda p: p.pid):
        parent = pids.get(process.ppid)
        if process.program in ROLES and (parent is None or parent.program != process.program):
            return process
    return None


def http_ok(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return None if response.status == 200 else f"{url} answered {response.status}"
    except OSError as exc:  # URLError and HTTPError are OSErrors
        return f"{url}: {exc}"


def option(argv: tuple[str, ...], name: str, default: int) -> int:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith(name + "="):
            return int(arg.split("=", 1)[1])
    return default


def check_web(env: dict[str, str]) -> str | None:
    return http_ok(f"http://127.0.0.1:{env.get('PORT') or '8000'}/healthz")


def check_worker(main: Process, table: list[Process], env: dict[str, str]) -> str | None:
    # Its children: the worker processes, and the fork serving metrics when there is one.
    wanted = option(main.argv, "--processes", 1)
    children = [p for p in table if p.ppid == main.pid and p.program == "dramatiq"]
    down = [f"{p.pid} ({p.state})" for p in children if p.state in {"Z", "X", "T", "t"}]
    if down:
        return f"worker processes dead or stopped: {', '.join(down)}"
    if len(children) < wanted:
        return f"{len(children)} of {wanted} worker processes running"
    port = env.get("WORKER_METRICS_PORT", "").strip()
    if port and port != "0":
        return http_ok(f"http://127.0.0.1:{port}/metrics")
    return None


def check(table: list[Process], env: dict[str, str]) -> str | None:
    """None when healthy, else why not."""
    main = main_process(table)
    if main is None:
        return None
    if main.program == "gunicorn":
        return check_web(env)
    return check_worker(main, table, env)


if __name__ == "__main__":
    problem = check(processes(), dict(os.environ))
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
    sys.exit(1 if problem else 0)
