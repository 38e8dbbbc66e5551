#!/usr/bin/env bash
# Media benchmark (issue 17): 12-megapixel photos uploaded through the API and processed by the
# media service, beside the raw decode → resize → encode rate of the same crates on the same
# cores in the same run; the media process's memory per job; and home-timeline reads during an
# upload storm. `stampede web` and `stampede media` run as separate processes (PostgreSQL, Redis,
# RabbitMQ on the same machine); the load generator shares the two cores with all of them.
#
#   loadtest/media.sh [PHOTOS STORM_RATE SECONDS READERS]   (defaults 12 1 20 4)
#
# The media process runs under `nice -n 10`, as media workers sharing a machine with web should
# (on Kubernetes they have their own pods and CPU limits): reads keep their share of the cores.
# Prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/local/backing-services.sh postgres redis rabbitmq >&2
deploy/local/need.sh ffmpeg curl jq >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin stampede --bin stampede-loadtest >&2
    BIN_DIR="$CARGO_TARGET_DIR/release"
fi
photos="${1:-12}" storm_rate="${2:-1}" seconds="${3:-20}" readers="${4:-4}"
port="${PORT:-3990}"

db=stampede_media_bench vhost=stampede_media_bench redis_db=11
loadtest/fresh-backing.sh "$db" "$vhost" "$redis_db"
media_root=$(mktemp -d)
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}"
     LOCAL_HTTPS=false LOCAL_DOMAIN="127.0.0.1:$port" RATE_LIMITS=false KEY_POOL_SIZE=0
     AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=media
     REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE=media-bench
     PAPERCLIP_ROOT_PATH="$media_root")
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

logs=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$logs" "$media_root"
}
trap cleanup EXIT
env "${env[@]}" PORT="$port" "$BIN_DIR/stampede" web >"$logs/web" 2>&1 & pids+=($!)
env "${env[@]}" PORT=$((port + 2)) nice -n 10 "$BIN_DIR/stampede" media >"$logs/media" 2>&1 &
media_pid=$!
pids+=("$media_pid")
env "${env[@]}" PORT=$((port + 3)) "$BIN_DIR/stampede" delivery >"$logs/delivery" 2>&1 & pids+=($!)
for p in "$port" $((port + 2)) $((port + 3)); do
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$p/health/ready" >/dev/null && break
        sleep 0.1
    done
done
# The reader follows the author, who has 40 statuses: the home timeline has a full page.
base="http://127.0.0.1:$port"
author=$(curl -fs -H 'Authorization: Bearer bench-author' "$base/api/v1/accounts/verify_credentials" | jq -r .id)
curl -fs -X POST -H 'Authorization: Bearer bench-reader' "$base/api/v1/accounts/$author/follow" >/dev/null
for i in $(seq 1 40); do
    curl -fs -X POST -H 'Authorization: Bearer bench-author' -d "status=status $i" \
        "$base/api/v1/statuses" >/dev/null
done
"$BIN_DIR/stampede-loadtest" media --base-url "$base" \
    --author-token bench-author --reader-token bench-reader --media-pid "$media_pid" \
    --photos "$photos" --storm-rate "$storm_rate" --seconds "$seconds" --readers "$readers" \
    || { for f in web media delivery; do echo "$f log (last 20 lines):" >&2; tail -20 "$logs/$f" >&2; done; exit 1; }
