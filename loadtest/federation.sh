#!/usr/bin/env bash
# Federation benchmark (issue 15): signed inbound Create(Note)s accepted and applied per second
# with the lag to a follower's home timeline, and signed outbound deliveries per second beside
# the machine's raw RSA-2048 signing rate, all through the real paths (inbox, API), against
# `stampede all` with Redis and RabbitMQ on this machine. The fake remote server and the load
# generator are one process (`stampede-loadtest federation`) on the same cores.
#
#   loadtest/federation.sh [SECONDS CONCURRENCY FOLLOWERS POSTS RATE]  (defaults 20 16 200 25 0)
#
# RATE paces the inbound activities (per second, 0 = as fast as the senders go).
#
# Prints one JSON line (and fails if a delivery or an inbound note went missing).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/local/backing-services.sh postgres redis rabbitmq >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin stampede --bin stampede-loadtest >&2
    BIN_DIR="$CARGO_TARGET_DIR/release"
fi
seconds="${1:-20}" concurrency="${2:-16}" followers="${3:-200}" posts="${4:-25}" rate="${5:-0}"
port="${PORT:-3985}" sink=$((port + 10))

db=stampede_federation_bench vhost=stampede_federation_bench redis_db=11
loadtest/fresh-backing.sh "$db" "$vhost" "$redis_db"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 PORT="$port" STREAMING_PORT=$((port + 1))
     LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}" LOCAL_HTTPS=false LOCAL_DOMAIN="127.0.0.1:$port"
     ALLOWED_PRIVATE_ADDRESSES=127.0.0.0/8 KEY_POOL_SIZE=0 RATE_LIMITS=false
     AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=fed
     REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE=fed-bench)
for var in DB_POOL DB_WORKER_POOL AMQP_PREFETCH; do
    [ -n "${!var:-}" ] && env+=("$var=${!var}")
done
env "${env[@]}" "$BIN_DIR/stampede" migrate >&2
psql -q "$DATABASE_URL" <<'SQL'
INSERT INTO accounts (id, username) VALUES (1, 'reader'), (2, 'author');
INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at)
VALUES (1, 1, 'reader@bench.example', 'unusable', true, now()),
       (2, 2, 'author@bench.example', 'unusable', true, now());
INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes)
VALUES (1, encode(sha256('bench-reader'), 'hex'), 1, 'read write follow'),
       (2, encode(sha256('bench-author'), 'hex'), 2, 'read write follow');
SQL

log=$(mktemp)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
env "${env[@]}" "$BIN_DIR/stampede" all >"$log" 2>&1 & pid=$!
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break
    sleep 0.1
done
"$BIN_DIR/stampede-loadtest" federation --base-url "http://127.0.0.1:$port" \
    --reader-token bench-reader --author-token bench-author --port "$sink" \
    --seconds "$seconds" --concurrency "$concurrency" --followers "$followers" --posts "$posts" \
    --rate "$rate" \
    || { echo "server log (last 30 lines):" >&2; tail -30 "$log" >&2; exit 1; }
