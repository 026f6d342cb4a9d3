"""deploy/stack.py's supervisor: a worker instance whose main process exits is started again
(Dramatiq's main process exits when one of its worker processes is killed); a crash loop, or
any other process dying, stops the stack. Real child processes, no services."""

from __future__ import annotations

import os
import sys

import pytest

from tests.faults.topology import stack_module


@pytest.fixture
def stack(tmp_path):
    module = stack_module()
    made = module.Stack(module.parse_args(["--var-dir", str(tmp_path), "--workers", "1"]))
    yield module, made
    for child in made.children:
        child.kill_group()
        child.wait(5)


def child(module, name: str, code: str):
    started = module.Child(name, [sys.executable, "-c", code], dict(os.environ))
    started.start()
    return started


def test_a_worker_instance_that_exits_is_started_again(stack) -> None:
    module, made = stack
    worker = child(module, "worker-1", "import time; time.sleep(0.2)")
    made.children.append(worker)
    first = worker.pid
    assert worker.wait(10)

    assert made.supervise() == ["worker-1"]

    assert worker.pid != first and worker.alive()
    assert made.supervise() == []  # alive: nothing to do


def test_a_worker_in_a_crash_loop_stops_the_stack(stack) -> None:
    module, made = stack
    worker = child(module, "worker-1", "raise SystemExit(1)")
    made.children.append(worker)

    for _ in range(module.MAX_RESTARTS):
        assert worker.wait(10)
        assert made.supervise() == ["worker-1"]
    assert worker.wait(10)

    with pytest.raises(RuntimeError, match="worker-1 exited 6 times in a minute"):
        made.supervise()


def test_the_web_tier_dying_stops_the_stack(stack) -> None:
    module, made = stack
    web = child(module, "web", "raise SystemExit(3)")
    made.children.append(web)
    assert web.wait(10)

    with pytest.raises(RuntimeError, match="web exited with status 3"):
        made.supervise()
