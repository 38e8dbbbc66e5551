#!/usr/bin/env bash
# Streaming benchmarks (issue 5), against release builds on this machine with PostgreSQL, Redis
# and RabbitMQ on it too.
#
#   loadtest/streaming.sh capacity [CONNECTIONS] [EVENTS]   (defaults: 100000, 10)
#       One `stampede streaming` process; CONNECTIONS WebSocket clients (user stream + public)
#       from stampede-loadtest streaming-capacity, spread over loopback source addresses. Reports
#       the process's resident memory with everyone connected, and the lag from the Redis publish
#       of each public event to its frame read by every client.
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
latency) connections="${2:-1000}" posts="${3:-60}" ;;
*) echo "usage: $0 capacity|latency [CONNECTIONS] [EVENTS|POSTS]" >&2; exit 2 ;;
esac
deploy/local/backing-services.sh postgres redis rabbitmq >&2
deploy/local/need.sh curl >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
cargo build --release --bin stampede --bin stampede-loadtest >&2
bin="$CARGO_TARGET_DIR/release"
# Every connection is a file descriptor in the server and in the client.
need=$((connections + 500))
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
env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 LOG_FORMAT=json RUST_LOG=warn LOCAL_HTTPS=false
     AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=bench
     REDIS_URL="$REDIS_URL" REDIS_NAMESPACE="$ns" DB_POOL=16 WEB_DOMAIN=127.0.0.1:3990
     STREAMING_API_BASE_URL=ws://127.0.0.1:3992)
env "${env[@]}" "$bin/stampede" migrate >&2

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 300); do curl -fs "$1" >/dev/null && return 0; sleep 0.1; done; echo "$1 did not answer" >&2; exit 1; }

if [ "$mode" = capacity ]; then
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
