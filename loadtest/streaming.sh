#!/usr/bin/env bash
# Streaming benchmarks (issue 5), against release builds on this machine with PostgreSQL, Redis
# and RabbitMQ on it too.
#
#   loadtest/streaming.sh capacity [CONNECTIONS] [EVENTS]   (defaults: 100000, 10)
#       One `stampede streaming` process; CONNECTIONS WebSocket clients (user stream + public)
#       from stampede-loadtest streaming-capacity, spread over loopback source addresses. Reports
#       the process's resident memory with everyone connected, and the lag from the Redis publish
#       of each public event to its frame read by every client.
#   loadtest/streaming.sh spread [CONNECTIONS] [PROCESSES] [EVENTS]   (defaults: 100000, 6, 10)
#       The horizontal design on one box: PROCESSES `stampede streaming` processes (ports 4001…)
#       beside `web` and `delivery`, and as many stampede-loadtest streaming-capacity processes,
#       each holding CONNECTIONS/PROCESSES WebSockets (user + public) to its own server, so that
#       no process passes the open-file limit. Once all are connected, an account posts EVENTS
#       public statuses through POST /api/v1/statuses, 2 s apart; lag runs from the start of the
#       POST to each frame read. Reports every streaming process's resident memory and their sum.
#   loadtest/streaming.sh latency [CONNECTIONS] [POSTS]      (defaults: 1000, 60)
#       web + delivery + streaming at rest; CONNECTIONS followers on their user stream while the
#       account they follow posts through the API once a second (the surge simulator's
#       streaming-crowd scenario): POST start → event read, per follower.
#
# Seeding is the documented fast path: accounts, users and tokens (`bench-<n>`) written straight
# into PostgreSQL. Prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-capacity}"
case "$mode" in
capacity) connections="${2:-100000}" events="${3:-10}" ;;
spread) connections="${2:-100000}" processes="${3:-6}" events="${4:-10}" ;;
latency) connections="${2:-1000}" posts="${3:-60}" ;;
*) echo "usage: $0 capacity|latency|spread [CONNECTIONS] [EVENTS|POSTS|PROCESSES [EVENTS]]" >&2; exit 2 ;;
esac
deploy/local/backing-services.sh postgres redis rabbitmq >&2
deploy/local/need.sh curl >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
# BIN_DIR=… runs binaries built elsewhere (an older build, for an A/B) instead of building.
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin stampede --bin stampede-loadtest >&2
    BIN_DIR="$CARGO_TARGET_DIR/release"
fi
bin="$BIN_DIR"
# Every connection is a file descriptor in the server and in the client (spread: per process).
need=$((connections + 500))
[ "$mode" != spread ] || need=$((connections / processes + 500))
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    echo "the open-file limit is $(ulimit -n) (hard: $(ulimit -Hn)) and $connections connections need $need;" \
         "raise it (as root: ulimit -n; in a container: its nofile limit) or run with at most $(($(ulimit -n) - 500))" >&2
    exit 1
fi

db=stampede_streaming_bench
vhost=stampede_streaming_bench
ns=streaming-bench
redis_db=12
loadtest/fresh-backing.sh "$db" "$vhost" "$redis_db"
# TLS to a PostgreSQL on the same machine only costs CPU on both sides.
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
export REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE="$ns"
# Nothing here federates: KEY_POOL_SIZE=0 keeps the delivery process from filling the pool of
# RSA keys (100 by default, 50-150 ms of CPU each) while the events are measured.
env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 LOG_FORMAT=json RUST_LOG=warn LOCAL_HTTPS=false KEY_POOL_SIZE=0
     AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=bench
     REDIS_URL="$REDIS_URL" REDIS_NAMESPACE="$ns" DB_POOL=16 WEB_DOMAIN=127.0.0.1:3990
     STREAMING_API_BASE_URL=ws://127.0.0.1:3992)
env "${env[@]}" "$bin/stampede" migrate >&2

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 300); do curl -fs "$1" >/dev/null && return 0; sleep 0.1; done; echo "$1 did not answer" >&2; exit 1; }

if [ "$mode" = capacity ] || [ "$mode" = spread ]; then
    echo "seeding $connections accounts with tokens" >&2
    psql -q "$DATABASE_URL" <<SQL
INSERT INTO accounts (id, username) SELECT g, 'u' || g FROM generate_series(1, $connections) g;
INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at)
SELECT g, g, 'u' || g || '@bench.example', 'unusable', true, now() FROM generate_series(1, $connections) g;
INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes)
SELECT g, encode(sha256(('bench-' || g)::bytea), 'hex'), g, 'read'
FROM generate_series(1, $connections) g;
ANALYZE;
SQL
fi
if [ "$mode" = spread ]; then
    # Account 1 posts the events.
    psql -q "$DATABASE_URL" -c "UPDATE oauth_access_tokens SET scopes = 'read write' WHERE account_id = 1"
    env "${env[@]}" PORT=3990 "$bin/stampede" web >/dev/null 2>&1 & pids+=($!)
    env "${env[@]}" PORT=3991 "$bin/stampede" delivery >/dev/null 2>&1 & pids+=($!)
    servers=()
    for i in $(seq 1 "$processes"); do
        # A streaming process reads PostgreSQL only to check tokens and load filters: a small
        # pool each keeps the processes' connections within PostgreSQL's max_connections.
        env "${env[@]}" PORT=$((4000 + i)) STREAMING_MAX_CONNECTIONS_PER_ACCOUNT=4 DB_POOL=4 DB_WORKER_POOL=1 \
            "$bin/stampede" streaming >/dev/null 2>&1 &
        pids+=($!); servers+=($!)
    done
    wait_for http://127.0.0.1:3990/health/ready
    for i in $(seq 1 "$processes"); do wait_for "http://127.0.0.1:$((4000 + i))/api/v1/streaming/health"; done
    barrier=$(mktemp -d)
    per=$((connections / processes))
    clients=()
    for i in $(seq 1 "$processes"); do
        "$bin/stampede-loadtest" streaming-capacity --server "127.0.0.1:$((4000 + i))" \
            --connections "$per" --first-token $(((i - 1) * per + 1)) --events "$events" \
            --barrier-dir "$barrier" --lags-file "$barrier/lags-$i" --time-limit 1800 \
            --server-pid "${servers[i - 1]}" >"$barrier/out-$i.json" 2>"$barrier/err-$i" &
        clients+=($!); pids+=($!)
    done
    started=$(date +%s)
    until [ "$(ls "$barrier" | grep -c '^ready-')" -ge "$processes" ]; do
        for c in "${clients[@]}"; do kill -0 "$c" 2>/dev/null || { echo "a load generator stopped:" >&2; cat "$barrier"/err-* >&2; exit 1; }; done
        [ $(($(date +%s) - started)) -lt 1500 ] || { echo "not everyone connected in time" >&2; exit 1; }
        sleep 1
    done
    connect_seconds=$(($(date +%s) - started))
    sleep 3
    rss_kib=0
    per_server=()
    for p in "${servers[@]}"; do
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
        rss_kib=$((rss_kib + kib)); per_server+=("$((kib / 1024))")
    done
    echo "all connected in ${connect_seconds} s; streaming processes hold $((rss_kib / 1024)) MiB" >&2
    for k in $(seq 0 $((events - 1))); do
        at=$(date +%s%6N)
        code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer bench-1' \
            --data-urlencode "status=capacity-$k: an event for every stream" http://127.0.0.1:3990/api/v1/statuses)
        [ "$code" = 200 ] || { echo "posting answered $code" >&2; exit 1; }
        echo "$at" >>"$barrier/published"
        sleep 2
    done
    for c in "${clients[@]}"; do wait "$c" || true; done
    connected=$(cat "$barrier"/out-*.json | jq -s 'map(.connected) | add')
    cat "$barrier"/lags-* | sort -n | awk -v expected=$((connected * events)) -v mib=$((rss_kib / 1024)) \
        -v connected="$connected" -v asked="$connections" -v procs="$processes" -v secs="$connect_seconds" \
        -v servers="$(IFS=,; echo "${per_server[*]}")" '
        { lag[NR] = $1 }
        END {
            n = NR
            p50 = lag[int(n * 0.50 + 0.999)]; p99 = lag[int(n * 0.99 + 0.999)]; mx = lag[n]
            printf "{\"benchmark\":\"streaming_spread\",\"connections\":%d,\"connected\":%d,\"processes\":%d,\"connect_seconds\":%d,\"streaming_rss_mib_total\":%d,\"streaming_rss_mib\":[%s],\"kib_per_connection\":%.1f,\"deliveries\":%d,\"deliveries_expected\":%d,\"lag_p50_ms\":%.1f,\"lag_p99_ms\":%.1f,\"lag_max_ms\":%.1f}\n",
                asked, connected, procs, secs, mib, servers, mib * 1024 / (connected > 0 ? connected : 1), n, expected, p50 / 1000, p99 / 1000, mx / 1000
        }'
    rm -rf "$barrier"
    exit 0
fi
if [ "$mode" = capacity ]; then
    env "${env[@]}" PORT=3992 STREAMING_MAX_CONNECTIONS_PER_ACCOUNT=4 "$bin/stampede" streaming >/dev/null 2>&1 &
    pids+=($!)
    server=$!
    wait_for http://127.0.0.1:3992/api/v1/streaming/health
    "$bin/stampede-loadtest" streaming-capacity --server 127.0.0.1:3992 \
        --connections "$connections" --events "$events" --server-pid "$server"
else
    env "${env[@]}" PORT=3990 "$bin/stampede" web >/dev/null 2>&1 & pids+=($!)
    env "${env[@]}" PORT=3991 "$bin/stampede" delivery >/dev/null 2>&1 & pids+=($!)
    env "${env[@]}" PORT=3992 "$bin/stampede" streaming >/dev/null 2>&1 & pids+=($!)
    wait_for http://127.0.0.1:3990/health/ready
    wait_for http://127.0.0.1:3992/api/v1/streaming/health
    report=$(mktemp -d)
    "$bin/stampede-loadtest" streaming-crowd --base-url http://127.0.0.1:3990 \
        --connections "$connections" --posts "$posts" --post-interval-ms 1000 \
        --report-dir "$report" >&2 || true
    jq -c '{benchmark: "streaming_latency", connections: .parameters.connections,
            posts: .parameters.posts, delivery: .measurements.delivery, facts: .facts,
            shares: .shares}' "$report/summary.json"
fi
