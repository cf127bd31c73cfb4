#!/usr/bin/env bash
# Installs what is missing, builds, and starts build/wsedge over wss:// on 127.0.0.1:8443 with
# its embedded chat backend: open https://127.0.0.1:8443/ in two browser tabs and chat (pass
# --backend ENDPOINT for your own backend, --app echo for the echo). Without a certificate of yours it makes a
# self-signed development one (build/dev-tls/); pass --tls-cert FILE --tls-key FILE for a real
# one, or --plain for ws://. Other arguments go to wsedge (see build/wsedge --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
args=("$@")
listen=${WSEDGE_LISTEN:-127.0.0.1:8443}
if [[ " ${args[*]-} " == *" --plain "* ]]; then
  listen=${WSEDGE_LISTEN:-127.0.0.1:9001}
elif [[ " ${args[*]-} " != *" --tls-cert "* ]]; then
  dir=build/dev-tls
  if [ ! -f "$dir/cert.pem" ]; then
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    echo "made a self-signed development certificate: $dir/cert.pem (trust it in your client)"
  fi
  args+=(--tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem")
fi
echo "open https://$listen/ (or http:// with --plain) in two browser tabs to chat"
exec build/wsedge --listen "$listen" "${args[@]}"
