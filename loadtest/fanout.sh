#!/usr/bin/env bash
# Fan-out benchmark (issue: statuses/timelines): an author with 40,000 and then 100,000 active
# local followers posts through POST /api/v1/statuses; how long from the status's commit (just
# before the API answers) until the last home feed is written in Redis, with `stampede web` and
# `stampede delivery` on this machine beside PostgreSQL, Redis and RabbitMQ.
#
#   loadtest/fanout.sh [POSTS_PER_SIZE]
#
# Followers are seeded straight into PostgreSQL (the documented fast path: accounts, users and
# follows rows; the author's token is `bench-author`). The time is what the delivery worker
# logs and exports as stampede_fanout_duration_seconds (commit → last feed written); the script
# then checks in Redis that every follower's feed holds the status. Prints JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/local/backing-services.sh postgres redis rabbitmq >&2
deploy/local/need.sh jq curl >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
# BIN_DIR=… runs binaries built elsewhere (an older build, for an A/B) instead of building.
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin stampede >&2
    BIN_DIR="$CARGO_TARGET_DIR/release"
fi
bin="$BIN_DIR"
posts="${1:-3}"

db=stampede_fanout_bench
vhost=stampede_fanout_bench
ns=fanout-bench
redis_db=12
loadtest/fresh-backing.sh "$db" "$vhost" "$redis_db"
# TLS to a PostgreSQL on the same machine only costs CPU on both sides.
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 LOG_FORMAT=json RUST_LOG=info LOCAL_HTTPS=false
     AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=bench
     REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE="$ns" DB_POOL=20
     FANOUT_READ_TIME_THRESHOLD=1000000 KEY_POOL_SIZE=0) # nothing federates: no RSA keys generated meanwhile
env "${env[@]}" "$bin/stampede" migrate >&2

echo "seeding 100,000 followers" >&2
psql -q "$DATABASE_URL" <<'SQL'
INSERT INTO accounts (id, username) VALUES (1, 'author');
INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at)
VALUES (1, 1, 'author@bench.example', 'unusable', true, now());
INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes)
VALUES (1, encode(sha256('bench-author'), 'hex'), 1, 'read write follow');
INSERT INTO accounts (id, username) SELECT 1000000 + g, 'f' || g FROM generate_series(1, 100000) g;
INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at)
SELECT 1000000 + g, 1000000 + g, 'f' || g || '@bench.example', 'unusable', true, now()
FROM generate_series(1, 100000) g;
INSERT INTO follows (id, account_id, target_account_id)
SELECT 1000000 + g, 1000000 + g, 1 FROM generate_series(1, 100000) g;
INSERT INTO account_stats (account_id, followers_count) VALUES (1, 100000);
SQL
# As autovacuum leaves a table that is mostly read: statistics and the visibility map.
psql -q "$DATABASE_URL" -c "VACUUM ANALYZE"

log=$(mktemp)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
env "${env[@]}" PORT=3970 "$bin/stampede" web >/dev/null 2>&1 & pids+=($!)
env "${env[@]}" PORT=3971 "$bin/stampede" delivery >"$log" 2>&1 & pids+=($!)
for _ in $(seq 1 300); do
    curl -fs http://127.0.0.1:3970/health/ready >/dev/null && curl -fs http://127.0.0.1:3971/health/ready >/dev/null && break
    sleep 0.1
done

# Counts the feeds that hold `id` among followers first..last, inside Redis.
count_feeds() {
    redis-cli -n "$redis_db" --raw EVAL "
        local n = 0
        for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
            if redis.call('ZSCORE', ARGV[4] .. ':feed:home:' .. (1000000 + i), ARGV[1]) then n = n + 1 end
        end
        return n" 0 "$1" 1 "$2" "$ns"
}

run() {
    local active="$1"
    psql -q "$DATABASE_URL" -c "UPDATE users SET last_active_at = CASE WHEN account_id <= 1000000 + $active OR account_id = 1 THEN now() ELSE now() - interval '30 days' END"
    # The active followers' feeds are kept (their ready markers live, as after a read); fan-out
    # writes only those (ADR 0039). The others have none, as after a long absence.
    seq 1 100000 | awk -v ns="$ns" -v a="$active" '{
        if ($1 <= a) print "SET " ns ":feed:home:" 1000000 + $1 ":ready 1 EX 86400"
        else print "DEL " ns ":feed:home:" 1000000 + $1 ":ready" }' |
        redis-cli -n "$redis_db" >/dev/null
    for i in $(seq 1 "$posts"); do
        id=$(curl -fsS -X POST http://127.0.0.1:3970/api/v1/statuses -H 'Authorization: Bearer bench-author' \
            -H 'Content-Type: application/json' -d "{\"status\": \"post $i to $active\"}" | jq -r .id)
        line=""
        for _ in $(seq 1 600); do
            line=$(grep "\"status_id\":$id" "$log" | grep 'status distributed' || true)
            [ -n "$line" ] && break
            sleep 0.05
        done
        [ -n "$line" ] || { echo "fan-out of $id did not finish in 30 s" >&2; exit 1; }
        written=$(count_feeds "$id" "$active")
        echo "$line" | jq -c --argjson active "$active" --argjson written "$written" \
            '{benchmark: "fanout", active_followers: $active, feeds_holding_status: $written,
              feeds_written: .fields.batch_written, commit_to_last_feed_ms: .fields.since_commit_ms,
              worker_ms: .fields.fanout_ms, audiences_ms: .fields.audiences_ms,
              feeds_ms: .fields.feeds_ms}'
        [ "$written" -eq "$active" ] || { echo "only $written of $active feeds hold $id" >&2; exit 1; }
    done
}

echo "40,000 active followers" >&2
run 40000
echo "100,000 active followers" >&2
run 100000
