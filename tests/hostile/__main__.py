"""`python -m tests.hostile DIR`: write the hostile corpus to DIR, with manifest.json."""

from __future__ import annotations

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from tests.hostile.corpus import write  # noqa: E402  (needs the settings)

print(f"wrote {write(sys.argv[1])} cases to {sys.argv[1]}")
