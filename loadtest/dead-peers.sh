#!/usr/bin/env bash
# Delivery with dead servers (issue 16): PEERS fake remote servers on loopback (one domain, one
# follower of the local author each), of which 30 % accept connections and never answer and
# 10 % answer 500, while the author posts RATE statuses a second for SECONDS through the API;
# then a burst of BURST posts. Runs twice against a fresh `stampede all` (Redis, RabbitMQ): with
# the dead servers, and with every server alive, so the live servers' delivery latency can be
# compared. The fake servers and the load generator are one process
# (`stampede-loadtest dead-peers`) on the same cores as Stampede.
#
#   loadtest/dead-peers.sh [PEERS RATE SECONDS BURST]  (defaults 1000 2 30 10)
#
# Prints one JSON line per run (and fails if a live server missed a delivery).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/local/backing-services.sh postgres redis rabbitmq >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin stampede --bin stampede-loadtest >&2
    BIN_DIR="$CARGO_TARGET_DIR/release"
fi
peers="${1:-1000}" rate="${2:-2}" seconds="${3:-30}" burst="${4:-10}"
port="${PORT:-3987}"
# Each peer's connections, hanging ones included, are file descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

db=stampede_dead_peers_bench vhost=stampede_dead_peers_bench redis_db=12
log=$(mktemp)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

run() {
    local hang="$1" error="$2"
    loadtest/fresh-backing.sh "$db" "$vhost" "$redis_db"
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
    local env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 PORT="$port" STREAMING_PORT=$((port + 1))
         LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}" LOCAL_HTTPS=false LOCAL_DOMAIN="127.0.0.1:$port"
         ALLOWED_PRIVATE_ADDRESSES=127.0.0.0/8 KEY_POOL_SIZE=0 RATE_LIMITS=false
         AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=dead
         REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE=dead-bench)
    for var in DB_POOL DB_WORKER_POOL AMQP_PREFETCH DELIVERY_CONCURRENCY DELIVERY_HOST_CONCURRENCY; do
        [ -n "${!var:-}" ] && env+=("$var=${!var}")
    done
    env "${env[@]}" "$BIN_DIR/stampede" migrate >&2
    psql -q "$DATABASE_URL" <<'SQL'
INSERT INTO accounts (id, username) VALUES (2, 'author');
INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at)
VALUES (2, 2, 'author@bench.example', 'unusable', true, now());
INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes)
VALUES (2, encode(sha256('bench-author'), 'hex'), 2, 'read write follow');
SQL
    env "${env[@]}" "$BIN_DIR/stampede" all >"$log" 2>&1 & pid=$!
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break
        sleep 0.1
    done
    "$BIN_DIR/stampede-loadtest" dead-peers --base-url "http://127.0.0.1:$port" \
        --author-token bench-author --peers "$peers" --hang-share "$hang" --error-share "$error" \
        --rate "$rate" --seconds "$seconds" --burst "$burst" \
        || { echo "server log (last 30 lines):" >&2; tail -30 "$log" >&2; exit 1; }
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

run 0.3 0.1
run 0 0
