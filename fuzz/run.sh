#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) from the corpus in fuzz/corpus, on the
# machine's stable Rust (no sanitizer: the code fuzzed is safe Rust; libFuzzer's coverage and
# its crash, timeout and memory checks still apply). New inputs go to a temporary directory, so
# the committed corpus changes only when someone copies a finding into it. A crash, a timeout
# (10 s) or more than 2 GiB for one input fails the run and leaves the input in
# fuzz/artifacts/TARGET/.
#
#   bash fuzz/run.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
seconds="${1:-20}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none --dev
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "fuzz: $target for ${seconds}s"
    set +e
    cargo fuzz run -s none --dev "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1
    status=$?
    set -e
    # libFuzzer's summary (and, on a finding, what it found), without its progress lines.
    grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|thread .* panicked|artifact_prefix|Test unit written)' \
        "$scratch/$target.log" || true
    if [ "$status" -ne 0 ]; then
        grep -A5 'panicked' "$scratch/$target.log" || tail -20 "$scratch/$target.log"
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a finding"
