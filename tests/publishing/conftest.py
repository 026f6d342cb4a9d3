"""Publishing's tests upload through the API like the uploads tests: the same fixtures."""

from __future__ import annotations

from tests.uploads.conftest import assert_nothing_left, empty_storage, post  # noqa: F401
