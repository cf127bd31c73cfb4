#!/usr/bin/env bash
# Fuzzes the protocol code with the libFuzzer targets in tests/fuzz/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]  runs each TARGET (default: all) for SECONDS (default
#       60), one after another, on a working corpus kept in build-fuzz/corpus/<target> across
#       runs and seeded from tests/fuzz/corpus/<target> (which is only read). An input that
#       crashes (or runs over 10 s) is saved under build-fuzz/crashes/<target>/ and its path
#       printed; the exit status is then 1.
#   scripts/fuzz.sh --test  runs the bounded, deterministic runs of meson's 'fuzz' suite (what
#       scripts/test.sh does).
# Either way build-fuzz/ is configured once, with clang, and rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
all=(upgrade_request_fuzz frame_reader_fuzz utf8_fuzz jwt_fuzz acl_file_fuzz proxy_header_fuzz
     inflate_fuzz record_open_fuzz)

[ -f build-fuzz/build.ninja ] || CC=clang CXX=clang++ meson setup build-fuzz \
  --buildtype=debugoptimized -Dfuzz=true -Dtests=false -Dbench=false -Dmimalloc=disabled
if [ "${1:-}" = "--test" ]; then
  exec meson test -C build-fuzz --suite fuzz --print-errorlogs
fi

seconds=${1:-60}
if [ $# -gt 0 ]; then shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [ -d "tests/fuzz/corpus/$t" ] || { echo "unknown target $t (known: ${all[*]})" >&2; exit 2; }
done
ninja -C build-fuzz "${targets[@]/#/tests/fuzz/}"

status=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t crashes=$PWD/build-fuzz/crashes/$t log=build-fuzz/fuzz-$t.log
  mkdir -p "$corpus" "$crashes"
  echo "== $t: ${seconds}s, corpus $corpus, log $log"
  if ! "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
      -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" "tests/fuzz/corpus/$t" \
      >"$log" 2>&1; then
    status=1
    grep -E "ERROR|SUMMARY" "$log" | head -5 || true
    crash=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    echo "CRASH in $t: ${crash:-see $log}"
  fi
  grep -E "^(Done|stat::number_of_executed_units)|DONE" "$log" | tail -2 || true
done
exit $status
