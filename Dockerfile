# syntax=docker/dockerfile:1
# One image, two roles (docs/operations.md):
#   web:    gunicorn imageservice.wsgi -c gunicorn.conf.py   (the default command)
#   worker: python manage.py rundramatiq --processes 2 --threads 4
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the dependencies of pyproject.toml in a virtualenv --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# The dependency list alone first, so a code change reuses this layer.
COPY pyproject.toml .
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install --requirement requirements.txt

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=imageservice.settings \
    VAR_DIR=/var/lib/imageservice \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    PORT=8000
RUN groupadd --system --gid 10001 imageservice \
    && useradd --system --uid 10001 --gid imageservice --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin imageservice \
    && install --directory --owner=imageservice --group=imageservice --mode=0750 /var/lib/imageservice
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . .
# Static files at build time (whitenoise serves them). The throwaway VAR_DIR keeps the development
# secret and keys that settings would make out of the image.
RUN VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var \
    && python -m compileall -q /app
USER 10001:10001
EXPOSE 8000 9191
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=4)"]
ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
CMD ["gunicorn", "imageservice.wsgi", "-c", "gunicorn.conf.py"]
