"""WSGI entry point. In embedded mode (no BROKER_URL; EMBEDDED_WORKER=true or DEBUG) it also
starts the in-process worker; without a broker and without either it refuses to start."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageservice.settings")
django.setup(set_prefix=False)  # what django.core.wsgi.get_wsgi_application does

from infra.wsgi import TolerantWSGIHandler  # noqa: E402

application = TolerantWSGIHandler()

from imageservice.embedded import start_embedded_worker  # noqa: E402

start_embedded_worker()
