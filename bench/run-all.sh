#!/usr/bin/env bash
# One run of every benchmark figure in BENCHMARKS.md (issue 9: "the figures above from one
# run"), in this order, all output into one results file whose path is printed at the end:
#   1. core send/receive pipeline (criterion, section 1)
#   2. VZD lookup cold vs cached against a real slapd (A_2026)
#   3. komle-load: idle sessions, 200-client throughput with per-command added latency, and
#      the 25 MB message through komle-cm vs straight (section 2)
#   4. komle-load-pop3: the POP3 equivalents (25 MB RETR, idle sessions, 200 clients)
#
# Usage: bench/run-all.sh [RESULTS_FILE]   (default: target/bench-results/run-<UTC time>.md)
# Arguments for komle-load can be given in KOMLE_LOAD_ARGS (default "1000 200 5 25 5").
# Builds release only for the crates it runs; on a shared machine expect noise and read the
# load averages printed with the results.
set -euo pipefail

cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=${1:-target/bench-results/run-$stamp.md}
mkdir -p "$(dirname "$results")"
: >"$results"

log() { printf '%s\n' "$*" | tee -a "$results"; }
# Runs a command, appending its stdout and stderr to the results file in a fenced block;
# returns the command's exit status.
run() {
    log ""
    log "\`\`\`text"
    log "\$ $*"
    "$@" 2>&1 | tee -a "$results"
    local rc=${PIPESTATUS[0]}
    log "\`\`\`"
    log "(exit $rc)"
    return "$rc"
}

log "# Benchmark run $stamp"
log ""
log "git: $(git rev-parse --short HEAD) $(git diff --quiet && echo clean || echo 'with uncommitted changes')"
log "machine: nproc $(nproc), $(grep MemTotal /proc/meminfo | tr -s ' '), CPU \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')\""
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

log ""
log "## 0. Release build"
run cargo build --release -p komle-smol -p komle-demo -p komle-examples --bin komle-cm --bin komle-demo --bin komle-load --bin komle-load-pop3 || {
    echo "build failed; results so far: $results"
    exit 1
}
# A failing step is recorded and the next one still runs; the script exits non-zero at the end.
failed=0

log ""
log "## 1. Core pipeline (criterion)"
run cargo bench -p komle-conformance --bench pipeline -- --warm-up-time 1 --measurement-time 5 ||
    failed=$((failed + 1))

log ""
log "## 2. VZD lookup, cold vs cached (real slapd)"
run cargo test --release -p komle-service --test ldap_latency -- --nocapture || failed=$((failed + 1))

log ""
log "## 3. Daemon: komle-load"
# shellcheck disable=SC2086 # word splitting of the arguments is intended
run ./target/release/komle-load ${KOMLE_LOAD_ARGS:-1000 200 5 25 5} || failed=$((failed + 1))

# Arguments for the POP3 counterpart of komle-load go in KOMLE_LOAD_POP3_ARGS
# (default "25 1000 200 5": MB, idle sessions, clients, sessions per client).
log ""
log "## 4. POP3 load (komle-load-pop3)"
# shellcheck disable=SC2086
run ./target/release/komle-load-pop3 ${KOMLE_LOAD_POP3_ARGS:-25 1000 200 5} || failed=$((failed + 1))

log ""
log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
log "finished: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $failed step(s) failed"
echo
echo "results: $results"
[ "$failed" -eq 0 ]
