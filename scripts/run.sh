#!/usr/bin/env bash
# Installs what is missing, builds, and starts build/wsedge serving the built-in echo
# application. Extra arguments go to wsedge (see build/wsedge --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# TLS arrives in a later release; until then the server runs plain ws:// on loopback.
exec build/wsedge --plain --listen "${WSEDGE_LISTEN:-127.0.0.1:9001}" "$@"
