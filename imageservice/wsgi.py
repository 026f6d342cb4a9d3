"""WSGI entry point. In embedded mode (no BROKER_URL; EMBEDDED_WORKER=true or DEBUG) it also
starts the in-process worker; without a broker and without either it refuses to start."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageservice.settings")

application = get_wsgi_application()

from imageservice.embedded import start_embedded_worker  # noqa: E402

start_embedded_worker()
