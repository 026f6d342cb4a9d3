"""Settings the apps parse later are checked at start-up: `manage.py check` (run by `migrate`,
`serve` and the container's migrate step) fails with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.services import repo_root


def check(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=repo_root(),
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MODERATION_POLICY", "{not json", "MODERATION_POLICY is not JSON"),
        ("MODERATION_POLICY", '{"reject": {"Explicit": 150}}', "MODERATION_POLICY reject.Explicit"),
        ("MODERATION_POLICY", '{"approve": {}}', "MODERATION_POLICY must be an object with keys"),
        ("THUMBNAIL_SIZES", "100x100,big", "THUMBNAIL_SIZES bad thumbnail size 'big'"),
        ("THUMBNAIL_FORMATS", "JPEG,AVIF", "THUMBNAIL_FORMATS must list some of"),
        ("THUMBNAIL_BACKGROUND", "white", "THUMBNAIL_BACKGROUND must be a colour"),
        ("WATERMARK_PATH", "/nonexistent/mark.png", "WATERMARK_PATH '/nonexistent/mark.png'"),
    ],
)
def test_a_bad_setting_fails_the_start_up_check_naming_the_variable(name, value, says):
    done = check(**{name: value})

    assert done.returncode == 1
    assert says in done.stderr, done.stderr[-2000:]


def test_the_start_up_check_passes_on_the_defaults():
    done = check()

    assert done.returncode == 0, done.stderr[-2000:]
    assert "System check identified no issues" in done.stdout
