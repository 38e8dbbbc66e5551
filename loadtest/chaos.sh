#!/usr/bin/env bash
# The chaos run (issue 22): a migration-day load on the local multi-process cluster
# (deploy/local/cluster.sh: 2 web, 2 streaming, 2 delivery, 1 media behind nginx) with fake
# federation peers on loopback, while one fault after another hits it:
#
#   SIGKILL a web, a streaming, a delivery and the media process (each restarted 3 s later),
#   restart RabbitMQ (its app stopped for 3 s), flush Redis, restart PostgreSQL.
#
# Two ledgers say what was lost or doubled: the migration day's (sign-ups, posts and follows
# answered 2xx against the database, loadtest/ledger.sh) and `stampede-loadtest chaos-ledger`'s
# (every effect of a steady trickle of posts: the follower's home feed and mention
# notifications through the API, the deliveries each fake peer received, each image's variant).
# For each fault the report gives the time until every process was ready again and what the
# load saw from the fault until 10 s after that: 5xx, time-outs, refused connections, p99.
#
#   loadtest/chaos.sh [SECONDS] [PEOPLE] [ARRIVALS_PER_S]    (defaults: 320 400 1.5)
#
# It restarts this machine's RabbitMQ and PostgreSQL: run it on a development machine, never
# beside anything else that uses them. Exits 1 when anything answered 2xx was lost or doubled.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-320}" people="${2:-400}" rate="${3:-1.5}"
[ "$seconds" -ge 300 ] || { echo "chaos: the fault schedule needs at least 300 s of load" >&2; exit 2; }

deploy/local/backing-services.sh postgres redis rabbitmq >&2
deploy/local/need.sh curl jq >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
cargo build --release --bin stampede --bin stampede-loadtest >&2
bin="$CARGO_TARGET_DIR/release"
report="${REPORT_DIR:-$(mktemp -d /tmp/chaos.XXXXXX)}"
mkdir -p "$report"
log() { printf 'chaos: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }

# The cluster delivers to the fake peers on loopback, and stops by itself within the hour.
export ALLOWED_PRIVATE_ADDRESSES=127.0.0.0/8 CLUSTER_TTL=3600 STAMPEDE_BIN="$bin/stampede"
deploy/local/cluster.sh reset
deploy/local/cluster.sh start >/dev/null
eval "$(deploy/local/cluster.sh env)"
export DATABASE_URL
load_pid="" ledger_pid=""
cleanup() {
    for p in $load_pid $ledger_pid; do kill "$p" 2>/dev/null || true; done
    deploy/local/cluster.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$bin/stampede-loadtest" migration-day --base-url "$STAMPEDE_URL" --people "$people" \
    --arrival-rate "$rate" --seconds "$seconds" --pool 400 --report-dir "$report/load" \
    >"$report/load.out" 2>"$report/load.err" &
load_pid=$!
"$bin/stampede-loadtest" chaos-ledger --base-url "$STAMPEDE_URL" --seconds "$seconds" \
    --rate 2 --peers 3 --drain-seconds 300 --report-dir "$report/ledger" \
    >"$report/ledger.out" 2>"$report/ledger.err" &
ledger_pid=$!
# The fault clock starts when the ledger's posts do (after its accounts and peers are set up).
until grep -q 'posts at' "$report/ledger.err" 2>/dev/null; do
    kill -0 "$ledger_pid" 2>/dev/null || { log "chaos-ledger did not start:"; cat "$report/ledger.err" >&2; exit 1; }
    sleep 0.5
done
started=$(date +%s)

# Every process ready again: the recovery time of a fault.
recovered() {
    local from=$1
    for _ in $(seq 1 600); do
        deploy/local/cluster.sh status >/dev/null 2>&1 && { echo $(( $(now_ms) - from )); return; }
        sleep 0.2
    done
    echo null
}
fault() { # at-seconds name command...
    local at=$1 name=$2
    shift 2
    while [ $(( $(date +%s) - started )) -lt "$at" ]; do sleep 0.5; done
    local from
    from=$(now_ms)
    log "$name"
    "$@" >>"$report/faults.log" 2>&1 || log "$name: the command failed (see faults.log)"
    local took
    took=$(recovered "$from")
    log "$name: every process ready again after ${took} ms"
    printf '{"fault":"%s","at_unix_ms":%s,"recovery_ms":%s,"recovered_unix_ms":%s}\n' \
        "$name" "$from" "$took" "$(now_ms)" >>"$report/faults.jsonl"
}
kill_restart() { deploy/local/cluster.sh kill "$1"; sleep 3; deploy/local/cluster.sh restart "$1"; }
rabbitmq_restart() { rabbitmqctl -q stop_app; sleep 3; rabbitmqctl -q start_app; }
postgres_restart() {
    local version
    version=$(pg_lsclusters -h | awk '$2 == "main" {print $1; exit}')
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart -m fast
}

fault 30 "SIGKILL web (1 of 2)" kill_restart web-3101
fault 65 "SIGKILL streaming (1 of 2)" kill_restart streaming-4101
fault 100 "SIGKILL delivery (1 of 2)" kill_restart delivery-4111
fault 135 "SIGKILL media (the only one)" kill_restart media-4121
fault 170 "restart RabbitMQ" rabbitmq_restart
fault 215 "flush Redis" redis-cli -n 12 flushdb
fault 255 "restart PostgreSQL" postgres_restart

status=0
wait "$load_pid" || log "the migration day exited $? (its SLOs are not judged here)"
load_pid=""
wait "$ledger_pid" || { log "chaos-ledger found effects lost or doubled"; status=1; }
ledger_pid=""

load_ledger=$(loadtest/ledger.sh "$DATABASE_URL" "$report/load/summary.json") || status=1
python3 - "$report" "$load_ledger" <<'PY' | tee "$report/chaos.json"
import json, pathlib, sys
report = pathlib.Path(sys.argv[1])
load_ledger = json.loads(sys.argv[2])
seconds = [json.loads(l) for l in (report / "load" / "seconds.jsonl").read_text().splitlines() if l]
posts = [json.loads(l) for l in (report / "ledger" / "posts.jsonl").read_text().splitlines() if l]
faults = [json.loads(l) for l in (report / "faults.jsonl").read_text().splitlines() if l]
ledger = json.loads((report / "ledger" / "ledger.json").read_text())
def window(f):
    start = f["at_unix_ms"]
    end = (f["recovered_unix_ms"] or start) + 10_000
    return start, end
rows = []
for f in faults:
    start, end = window(f)
    inside = [s for s in seconds if start - 1000 < s["t_unix_ms"] <= end]
    p99s = [s["p99_ms"] for s in inside if s["p99_ms"] is not None]
    mine = [p for p in posts if start <= p["sent_unix_ms"] <= end]
    rows.append({
        "fault": f["fault"],
        "recovery_s": None if f["recovery_ms"] is None else round(f["recovery_ms"] / 1000, 1),
        "window_s": round((end - start) / 1000, 1),
        "load_requests": sum(sum(s[k] for k in ("2xx", "429", "4xx", "5xx", "timeout", "connect")) for s in inside),
        "load_5xx": sum(s["5xx"] for s in inside),
        "load_timeouts": sum(s["timeout"] for s in inside),
        "load_refused": sum(s["connect"] for s in inside),
        "load_p99_ms_worst_second": max(p99s) if p99s else None,
        "ledger_posts_sent": len(mine),
        "ledger_posts_failed": sum(1 for p in mine if p["outcome"] != "2xx"),
    })
quiet = [s for s in seconds if not any(window(f)[0] - 1000 < s["t_unix_ms"] <= window(f)[1] for f in faults)]
quiet_p99 = sorted(s["p99_ms"] for s in quiet if s["p99_ms"] is not None)
out = {
    "faults": rows,
    "outside_faults": {
        "seconds": len(quiet),
        "p99_ms_median_second": quiet_p99[len(quiet_p99) // 2] if quiet_p99 else None,
        "5xx": sum(s["5xx"] for s in quiet),
    },
    "migration_day_ledger": load_ledger,
    "chaos_ledger": ledger,
}
print(json.dumps(out, indent=2))
PY
cp -r "${CLUSTER_DIR:-$HOME/.cache/stampede-cluster}/logs" "$report/cluster-logs" 2>/dev/null || true
log "report: $report (chaos.json, faults.jsonl, load/, ledger/, cluster-logs/)"
exit "$status"
