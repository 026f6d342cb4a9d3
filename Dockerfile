# One image, every role (docs/operations.md), chosen by the command deploy/docker-entrypoint.sh
# gets: `web` (gunicorn, the default), `worker` (Dramatiq), `migrate`, or any command as given.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the locked runtime dependencies in a virtualenv -----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# The lock alone first, so a code change reuses this layer. Every file is checked against the
# lock's hashes and nothing outside the lock is installed; the code itself runs from /app.
COPY requirements.lock .
RUN pip install --require-hashes --requirement requirements.lock \
    && pip check

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# HOME: a writable directory for libraries that keep a cache there (onnxruntime warns on every
# start without one); the user's home, /app, is read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=imageservice.settings \
    VAR_DIR=/var/lib/imageservice \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    HOME=/tmp \
    PORT=8000
RUN groupadd --system --gid 10001 imageservice \
    && useradd --system --uid 10001 --gid imageservice --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin imageservice \
    && install --directory --owner=imageservice --group=imageservice --mode=0750 /var/lib/imageservice
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . .
# Static files at build time (whitenoise serves them). Settings need a secret and keys to load:
# throwaway development ones, in a VAR_DIR that does not stay in the image.
RUN python -m infra.devsetup --var-dir /tmp/build-var \
    && VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var \
    && python -m compileall -q /app
USER 10001:10001
EXPOSE 8000 9191
# Role-aware: /healthz for web, live worker processes (and their metrics port) for a worker.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
CMD ["web"]
