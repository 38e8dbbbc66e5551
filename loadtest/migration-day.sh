#!/usr/bin/env bash
# Migration day against `stampede all` (issue 26): newcomers sign up through the API, follow
# 50–200 established accounts, open a stream, and read, favourite, post and boost; a probe
# measures post → follower-home fan-out lag through the API. One `stampede all` with Redis and
# RabbitMQ on its own empty database, vhost and Redis db, on the same 2-core machine as the load
# generator. Fails (exit 1) on any 5xx or time-out, and on the SLOs given in SLOS.
#
#   loadtest/migration-day.sh [PEOPLE] [ARRIVALS_PER_S] [SECONDS] [POOL]
#                                     (defaults: 600 6 150 1000, the run issue 26 names)
#
# Environment: DB_POOL, DB_WORKER_POOL … pass through to the server (defaults: Stampede's own);
# BIN_DIR runs prebuilt binaries (CI uses the debug build); REPORT_DIR keeps the report
# (default: a temporary folder, printed); SLOS adds --slo rules, separated by ';'
# (default: the issue's targets); RAW_RATE=0 skips the reference measurement (the machine's raw
# PostgreSQL rate: pgbench's select-only transactions/s for 10 s right after the run, printed
# as raw_pg_select_tps for the ratio beside the absolute figures).
set -euo pipefail
cd "$(dirname "$0")/.."
people="${1:-600}" rate="${2:-6}" seconds="${3:-150}" pool="${4:-1000}"

deploy/local/backing-services.sh postgres redis rabbitmq >&2
deploy/local/need.sh curl jq >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin stampede --bin stampede-loadtest >&2
    BIN_DIR="$CARGO_TARGET_DIR/release"
fi
report="${REPORT_DIR:-$(mktemp -d /tmp/migration-day.XXXXXX)}"
mkdir -p "$report"

db=stampede_migration_day
vhost=stampede_migration_day
redis_db=12
port="${PORT:-3990}"
loadtest/fresh-backing.sh "$db" "$vhost" "$redis_db"
# TLS to a PostgreSQL on the same machine only costs CPU on both sides.
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
server_env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 PORT="$port" STREAMING_PORT=$((port + 1))
     LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}" LOCAL_HTTPS=false LOCAL_DOMAIN="127.0.0.1:$port"
     RATE_LIMITS=false AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=md
     KEY_POOL_SIZE="${KEY_POOL_SIZE:-0}"
     REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE=md
     PAPERCLIP_ROOT_PATH="$report/media")
for var in DB_POOL DB_WORKER_POOL DB_POOL_QUEUE DB_ACQUIRE_TIMEOUT_MS AMQP_PREFETCH AMQP_QUEUE_TYPE; do
    [ -n "${!var:-}" ] && server_env+=("$var=${!var}")
done

pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; true; }
trap cleanup EXIT
env "${server_env[@]}" "$BIN_DIR/stampede" all >"$report/server.log" 2>&1 & pid=$!
ready=""
for _ in $(seq 1 600); do
    if curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null; then ready=yes; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$ready" ] || { echo "stampede all did not become ready; its log: $report/server.log" >&2; tail -20 "$report/server.log" >&2; exit 1; }

slos=(--slo '5xx-rate<=0%')
IFS=";" read -r -a extra <<<"${SLOS-p99(home)<500ms;p99(post)<1s;p99(favourite)<1s;p99(reblog)<1s;p99(follow)<1s;fanout-p99<5s}"
for rule in "${extra[@]}"; do [ -n "$rule" ] && slos+=(--slo "$rule"); done

started=$(date +%s)
status=0
"$BIN_DIR/stampede-loadtest" migration-day --base-url "http://127.0.0.1:$port" \
    --people "$people" --arrival-rate "$rate" --seconds "$seconds" --pool "$pool" \
    --report-dir "$report" "${slos[@]}" >"$report/loadtest.out" || status=$?
took=$(( $(date +%s) - started ))
kill -0 "$pid" 2>/dev/null || { echo "stampede all died during the run; its log: $report/server.log" >&2; status=1; }
curl -s "http://127.0.0.1:$port/metrics" >"$report/metrics.txt" || true

raw_tps=null
if [ "${RAW_RATE:-1}" != 0 ]; then
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=""
    pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1)
    if [ -n "$pgbench" ]; then
        psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS stampede_raw_rate" -qc "CREATE DATABASE stampede_raw_rate"
        "$pgbench" -h 127.0.0.1 -U postgres -i -q -s 10 stampede_raw_rate >/dev/null 2>&1
        raw_tps=$("$pgbench" -h 127.0.0.1 -U postgres -S -c 8 -j 2 -T 10 stampede_raw_rate 2>/dev/null \
            | awk '/^tps/ {print int($3); exit}')
        psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS stampede_raw_rate"
    fi
fi

summary="$report/summary.json"
if [ -f "$summary" ]; then
    ledger=$(loadtest/ledger.sh "$DATABASE_URL" "$summary") || status=1
    jq -c --arg took "$took" --argjson raw "${raw_tps:-null}" --argjson ledger "${ledger:-null}" '{
        people: .parameters.people, seconds_asked: .parameters.seconds, seconds_taken: ($took|tonumber),
        signed_up: ($ledger.signups.stored // null), load_seconds, requests: .all.requests, responses: .all.responses,
        p99_ms: (.operations | map_values(.latency_ms.p99)),
        ok_per_s: .all.ok_per_s, raw_pg_select_tps: $raw, ledger: $ledger,
        fanout: .measurements.fanout, facts: .facts, failed: [.slo[] | select(.pass != true)], pass }' "$summary" 2>/dev/null \
        || cat "$summary"
fi
echo "report: $report (server log, metrics, HTML report, summary.json)" >&2
exit "$status"
