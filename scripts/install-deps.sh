#!/usr/bin/env bash
# Installs the Debian packages wsedge builds, runs and tests with; skips those already there.
set -euo pipefail
packages=(
  build-essential pkg-config cmake meson ninja-build   # toolchain
  liburing-dev libssl-dev libmimalloc-dev openssl zlib1g-dev  # the server (zlib: permessage-deflate)
  libzmq3-dev cppzmq-dev                               # the bridge to backends
  libtomlplusplus-dev                                  # the config file and the ACL file
  libsystemd-dev systemd                               # sd_notify readiness and watchdog; the unit's check
  libgtest-dev python3 python3-websockets nodejs node-ws curl  # the tests
  python3-zmq chromium chromium-driver python3-selenium # backends in Python, the browser test
  python3-jwt                                          # tokens minted by a third party
  python3-prometheus-client haproxy                    # the metrics parser, PROXY protocol sender
  libbenchmark-dev libboost-dev libwebsocketpp-dev gnuplot-nox # the bench and its baselines
  libdeflate-dev                                       # micro: what zlib is compared with
  mongrel2-core pushpin                                # the bridge's baselines
  clang libclang-rt-14-dev                              # the fuzz targets (libFuzzer)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
