from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.topology import Topology

# The upload tests' fixtures: `post` (an upload as the frontend sends it), `assert_nothing_left`
# (no row, no stored object, no queued job) and the autouse `empty_storage`; and moderation's
# autouse reset of scripted verdicts and of the in-process blocklist index, and its `make_image`
# (an original stored and its row created in a given state).
from tests.moderation.conftest import fresh_moderation, make_image  # noqa: F401
from tests.services import installed, missing_service
from tests.uploads.conftest import assert_nothing_left, empty_storage, post  # noqa: F401


@pytest.fixture(scope="session")
def topology() -> Iterator[Topology]:
    """The real topology on private servers, started once for the fault tests that need it."""
    for binary in ("redis-server", "moto_server"):
        if installed(binary) is None:
            missing_service(f"{binary} is not installed")
    started = Topology()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def stack(topology: Topology) -> Iterator[Topology]:
    """The topology for one test, which leaves it repaired and quiet for the next."""
    yield topology
    topology.settle()
