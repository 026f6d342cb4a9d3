#!/bin/sh
# Entry point of the image, for every role (docs/operations.md):
#   web       gunicorn (the default command)
#   worker    Dramatiq: WORKER_PROCESSES (2) x WORKER_THREADS (4), running tasks given
#             WORKER_SHUTDOWN_TIMEOUT (50) seconds to finish on SIGTERM
#   migrate   the schema and the roles, before a new version's web and workers start
# Arguments after a role are passed on (`worker --queues moderation`); any other command is run
# as given (`python manage.py check_integrity`).
set -eu

# Prometheus's multiprocess mode counts every file in PROMETHEUS_MULTIPROC_DIR: start each
# container with it empty. Only its contents go, never the directory: it may be a mount point.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
fi

role=${1:-web}
[ $# -gt 0 ] && shift
case "$role" in
    web)
        exec gunicorn imageservice.wsgi -c gunicorn.conf.py "$@"
        ;;
    worker)
        # Logs are JSON on stderr; rundramatiq's start-up lines are plain text on stdout, which
        # nothing else writes to: discard it so every line of the log is JSON.
        exec python manage.py rundramatiq --skip-logging \
            --processes "${WORKER_PROCESSES:-2}" --threads "${WORKER_THREADS:-4}" \
            --worker-shutdown-timeout "$((${WORKER_SHUTDOWN_TIMEOUT:-50} * 1000))" \
            "$@" >/dev/null
        ;;
    migrate)
        python manage.py migrate --noinput "$@"
        exec python manage.py setup_roles
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
