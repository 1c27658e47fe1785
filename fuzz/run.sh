#!/usr/bin/env bash
# Runs every fuzz target in turn (one at a time: one core each), SECONDS each (default
# 600), with the committed seeds in fuzz/corpus/<target>/ and a scratch corpus in
# $FUZZ_WORK (default /tmp/shoal-fuzz) that the fuzzer grows. Needs nightly and cargo-fuzz
# (`cargo install cargo-fuzz`). Prints each target's "Done N runs in T second(s)" line.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(text_parse meta_parse binary_parse connection)
work=${FUZZ_WORK:-/tmp/shoal-fuzz}
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    echo "==> $t for ${secs}s (log $log)"
    if cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=16384 -jobs=1 -workers=1 >"$log" 2>&1; then
        :
    else
        echo "$t FAILED: see $log and fuzz/artifacts/$t/"
    fi
    grep -h "Done .* runs" "$log" fuzz-0.log 2>/dev/null | tail -1 || true
done
