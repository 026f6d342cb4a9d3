#!/bin/sh
# Entry point of the image, for both roles. Prometheus's multiprocess mode counts every file in
# PROMETHEUS_MULTIPROC_DIR: start each container with an empty one, then run the command.
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
