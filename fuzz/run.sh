#!/usr/bin/env bash
# Runs every fuzz target (or those named after SECONDS) for SECONDS each (default 600) and
# prints, per target, the executions done and the findings (crash, leak, timeout or OOM inputs
# libFuzzer wrote under artifacts/<target>/).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); the stable toolchain is enough, this
# script sets RUSTC_BOOTSTRAP=1 for the nightly-only flags libFuzzer builds need. Corpora grow in
# fuzz/corpus/<target>/ (not committed), seeded from fuzz/seeds/<target>/ (committed).
# SANITIZER=none skips AddressSanitizer (faster; the Rust code is all safe, zstd is C).
set -u
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
export RUSTC_BOOTSTRAP=1
san="${SANITIZER:-address}"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list --fuzz-dir .); fi

cargo fuzz build --fuzz-dir . --sanitizer "$san" || exit 2
mkdir -p logs
printf '%-22s %12s %10s %8s %8s  %s\n' target execs exec/s corpus findings status
total_findings=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    cargo fuzz run --fuzz-dir . --sanitizer "$san" "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    after=$(find "artifacts/$t" -type f | wc -l)
    found=$((after - before))
    total_findings=$((total_findings + found))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$t.log" | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    status=ok
    [ "$rc" -ne 0 ] && status="exit $rc: see fuzz/logs/$t.log"
    printf '%-22s %12s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$found" "$status"
done
[ "$total_findings" -eq 0 ]
