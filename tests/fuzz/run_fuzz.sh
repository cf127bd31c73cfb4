#!/usr/bin/env bash
# run_fuzz.sh FUZZER SEEDS ARTIFACTS [LIBFUZZER-FLAGS...]
# Runs FUZZER over the seed corpus SEEDS without ever writing into it: new inputs go to a
# temporary first corpus directory (libFuzzer adds only to the first), removed afterwards, and a
# crashing input to ARTIFACTS/, whose path libFuzzer prints ("Test unit written to ...").
set -euo pipefail
fuzzer=$1 seeds=$2 artifacts=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
"$fuzzer" -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" "$work" "$seeds"
