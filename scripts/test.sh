#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, conformance, interop and a bench
# smoke run on the release build, then the unit and conformance suites again under ASan + UBSan,
# then short deterministic runs of the libFuzzer targets (a clang build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

status=0
meson test -C build --print-errorlogs || status=1

[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debugoptimized \
  -Db_sanitize=address,undefined -Db_lundef=false -Dmimalloc=disabled -Dbench=false
ninja -C build-asan
# alloc_dealloc_mismatch=0: Debian's libzmq 4.3.4 frees with free() what it allocated with
# new (std::nothrow) (seen on its I/O thread); that is libzmq's, and would abort every run that
# uses a TCP backend.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:alloc_dealloc_mismatch=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --suite unit --suite integration --print-errorlogs || status=1

# The libFuzzer targets (clang build in build-fuzz/), a fixed number of seeded runs each.
scripts/fuzz.sh --test || status=1

# One closing line over all three runs, counted from meson's own logs.
/usr/bin/python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
  build-fuzz/meson-logs/testlog.json <<'PY'
import json, os, sys
passed = failed = 0
for path in sys.argv[1:]:
    if not os.path.exists(path):  # that build did not get as far as testing: count it failed
        failed += 1
        continue
    for line in open(path):
        r = json.loads(line)["result"]
        if r == "OK":
            passed += 1
        elif r != "SKIP":
            failed += 1
print(f"wsedge tests: {passed} passed, {failed} failed")
PY
exit $status
