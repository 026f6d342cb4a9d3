from __future__ import annotations

# The upload tests' fixtures: `post` (an upload as the frontend sends it), `assert_nothing_left`
# (no row, no stored object, no queued job) and the autouse `empty_storage`; and moderation's
# autouse reset of scripted verdicts and of the in-process blocklist index, and its `make_image`
# (an original stored and its row created in a given state).
from tests.moderation.conftest import fresh_moderation, make_image  # noqa: F401
from tests.uploads.conftest import assert_nothing_left, empty_storage, post  # noqa: F401
