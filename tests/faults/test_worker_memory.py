"""Huge decodes on the real topology (deploy/stack.py: 2 worker instances, each one process of
2 threads, against private servers): 4 concurrent 49-megapixel WebP uploads and 2 PNG. The
process-wide decode budget (DECODE_PIXEL_BUDGET) makes decodes that would exceed it wait, so
no worker dies, every image ends final, and no worker process grows by more than 1.5 GB.
bench/worker_memory.py measures the same with compose's 2 processes x 4 threads."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from tests.faults.topology import Topology
from tests.photos import huge_picture as huge
from tests.photos import photo

pytestmark = [pytest.mark.services, pytest.mark.slow]

GROWTH_LIMIT_KB = 1536 * 1024


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def test_huge_uploads_finish_without_a_worker_growing_past_its_budget(stack: Topology):
    inputs = [huge("WEBP", n) for n in range(4)] + [huge("PNG", n) for n in range(4, 6)]
    warm = [stack.upload(photo(640, 480, quality=50 + n)) for n in range(4)]
    stack.wait_final([body["id"] for _, _, body in warm])
    pids = [pid for number in (1, 2) for pid in stack.worker_pids(number)]
    before = {}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        before[pid] = status_kb(pid, "VmRSS")

    with concurrent.futures.ThreadPoolExecutor(len(inputs)) as pool:
        answers = list(pool.map(lambda data: stack.upload(data, timeout=120), inputs))

    assert [status for status, _, _ in answers] == [202] * len(inputs), answers
    states = stack.wait_final([body["id"] for _, _, body in answers], timeout=600)
    assert set(states.values()) <= {"published", "rejected"}, states
    assert all(stack.worker(number).alive() for number in (1, 2))
    growth = {pid: status_kb(pid, "VmHWM") - before[pid] for pid in pids}
    assert max(growth.values()) <= GROWTH_LIMIT_KB, {p: g // 1024 for p, g in growth.items()}
