#!/usr/bin/env bash
# Home-timeline benchmark (issue: statuses/timelines): GET /api/v1/timelines/home?limit=20 from
# 10,000 accounts each following 200, against `stampede web` (+ `stampede delivery`, idle) with
# PostgreSQL, Redis and RabbitMQ on the same 2-core machine. wrk (Debian's package) drives it
# with each request signed by a random one of the 10,000 tokens.
#
#   loadtest/home.sh [SECONDS] [CONNECTIONS...]      (defaults: 30 s; 8 16 32 connections)
#   POSTING=1 loadtest/home.sh [SECONDS] [CONNECTIONS…]   afterwards, sustained posting: wrk posts
#       public statuses through POST /api/v1/statuses as random accounts (each followed by 200)
#       on each connection count, while 8 connections read home timelines; reports posts/s,
#       feed inserts/s (× 200), the home reads' latency, and the fan-out lag (commit → last feed
#       written, the delivery process's stampede_fanout_duration_seconds) of that run.
#       POST_DELAY_MS=… makes each posting connection pause that long between its posts, to
#       hold a rate below the machine's limit (wrk cannot pace exactly: the rate is about
#       connections / (pause + answer time); the report gives the rate reached).
#   DB_POOL=… loadtest/home.sh …    the web process's request connections (default 4: on two
#       cores shared with PostgreSQL, more busy connections cost PostgreSQL more CPU per page;
#       ADR 0042).
#   REPLICA=1 loadtest/home.sh …    the same, with a streaming read replica of the database
#       (deploy/local/postgres-standby.sh, on port 5499 of the same machine) in REPLICA_DB_URL: the
#       timelines read it, every write and token lookup stays on the primary.
#
# Before anything else it measures 5 s of home pages against the fresh web process (cold caches:
# tokens, statuses, accounts), and after everything 5 s of pages from 2,000 accounts whose feeds
# were dropped from Redis (returning inactive accounts: a 206 from PostgreSQL, then the rebuilt
# feed).
#
# Each run also measures, at the same connection counts and interleaved with it, the local and
# federated public timelines and a hashtag timeline (`#surge`, on a quarter of the statuses),
# and the framework's ceiling: `stampede-loadtest json-ceiling`, an axum server answering every
# request with a captured home page's exact bytes (the same size of answer, no work behind it).
# The ratio route/ceiling is how much of the machine the timeline code leaves to HTTP itself.
#
# Seeding is the documented fast path: accounts, users, tokens (`bench-<n>`), follows and
# 40,000 statuses (4 per account) written straight into PostgreSQL, and each home feed (the 400
# newest of the 800 statuses of the 200 accounts followed, exactly what fan-out keeps:
# feeds::FEED_MAX; FEED_MAX=… for a build that kept another number) with its ready marker
# straight into Redis. Prints one JSON line per connection count.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/local/backing-services.sh postgres redis rabbitmq >&2
deploy/local/need.sh wrk jq curl >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
# BIN_DIR=… runs binaries built elsewhere (an older build, for an A/B) instead of building.
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin stampede --bin stampede-loadtest >&2
    BIN_DIR="$CARGO_TARGET_DIR/release"
fi
bin="$BIN_DIR"
seconds="${1:-30}"
shift || true
connections=("${@:-8 16 32}")
# shellcheck disable=SC2206
connections=(${connections[*]})

db=stampede_home_bench
vhost=stampede_home_bench
ns=home-bench
redis_db=11
accounts=10000
feed_max="${FEED_MAX:-400}"
loadtest/fresh-backing.sh "$db" "$vhost" "$redis_db"
# TLS to a PostgreSQL on the same machine only costs CPU on both sides.
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
env=(DATABASE_URL="$DATABASE_URL" BIND=127.0.0.1 LOG_FORMAT=json RUST_LOG=warn LOCAL_HTTPS=false
     AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=bench
     REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE="$ns" DB_POOL="${DB_POOL:-4}"
     KEY_POOL_SIZE=0) # nothing federates here: no RSA keys generated during the measurement
env "${env[@]}" "$bin/stampede" migrate >&2

echo "seeding $accounts accounts × 200 follows, 40,000 statuses" >&2
psql -q "$DATABASE_URL" <<SQL
INSERT INTO accounts (id, username) SELECT g, 'u' || g FROM generate_series(1, $accounts) g;
INSERT INTO users (id, account_id, email, password_hash, approved, confirmed_at)
SELECT g, g, 'u' || g || '@bench.example', 'unusable', true, now() FROM generate_series(1, $accounts) g;
INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes)
SELECT g, encode(sha256(('bench-' || g)::bytea), 'hex'), g, 'read write follow'
FROM generate_series(1, $accounts) g;
-- Account a follows a+37k (mod N) for k = 1..200: distinct, never itself.
INSERT INTO follows (id, account_id, target_account_id)
SELECT a * 1000 + k, a, ((a - 1 + 37 * k) % $accounts) + 1
FROM generate_series(1, $accounts) a, generate_series(1, 200) k;
INSERT INTO statuses (id, account_id, text, content, visibility, conversation_id, created_at)
SELECT ((1700000000000 + g) << 16), ((g - 1) % $accounts) + 1, 'status ' || g,
       '<p>status ' || g || '</p>', 'public', ((1700000000000 + g) << 16),
       now() - make_interval(secs => 40000 - g)
FROM generate_series(1, 4 * $accounts) g;
INSERT INTO tags (name) VALUES ('surge');
INSERT INTO statuses_tags (tag_id, status_id)
SELECT t.id, ((1700000000000 + g) << 16) FROM tags t, generate_series(4, 4 * $accounts, 4) g;
INSERT INTO account_stats (account_id, statuses_count, following_count, followers_count)
SELECT g, 4, 200, 200 FROM generate_series(1, $accounts) g;
SQL
# As autovacuum leaves a table that is mostly read: statistics and the visibility map.
psql -q "$DATABASE_URL" -c "VACUUM ANALYZE"

echo "writing $accounts home feeds into Redis" >&2
psql -qAt "$DATABASE_URL" <<SQL | redis-cli -n "$redis_db" >/dev/null
SELECT 'ZADD $ns:feed:home:' || account_id || ' ' || string_agg(id || ' ' || id, ' ')
FROM (SELECT f.account_id, s.id,
             row_number() OVER (PARTITION BY f.account_id ORDER BY s.id DESC) AS newest
      FROM follows f JOIN statuses s ON s.account_id = f.target_account_id) kept
WHERE newest <= $feed_max
GROUP BY account_id;
SELECT 'SET $ns:feed:home:' || g || ':ready 1 EX 86400' FROM generate_series(1, $accounts) g;
SQL
echo "feeds: $(redis-cli -n "$redis_db" dbsize) keys; one holds $(redis-cli -n "$redis_db" zcard "$ns:feed:home:1")" >&2

pids=()
script=$(mktemp --suffix=.lua)
standby=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
    rm -f "$script"
    [ -z "$standby" ] || deploy/local/postgres-standby.sh remove "$standby"
}
trap cleanup EXIT
if [ "${REPLICA:-0}" = 1 ]; then
    standby=$(mktemp -d /tmp/stampede-home-standby.XXXXXX)
    echo "starting a streaming replica on port 5499" >&2
    deploy/local/postgres-standby.sh start "$standby" 5499
    env+=(REPLICA_DB_URL="postgres://postgres@127.0.0.1:5499/$db?sslmode=disable")
fi
env "${env[@]}" PORT=3980 "$bin/stampede" web >/dev/null 2>&1 & pids+=($!)
web_pid=$!
env "${env[@]}" PORT=3981 "$bin/stampede" delivery >/dev/null 2>&1 & pids+=($!)
delivery_pid=$!
for _ in $(seq 1 300); do curl -fs http://127.0.0.1:3980/health/ready >/dev/null && break; sleep 0.1; done
if [ -n "$standby" ]; then
    for _ in $(seq 1 100); do
        curl -fs http://127.0.0.1:3980/metrics | grep -q '^stampede_db_replica_in_use 1' && break; sleep 0.1
    done
    curl -fs http://127.0.0.1:3980/metrics | grep -q '^stampede_db_replica_in_use 1' ||
        { echo "the replica never came into use" >&2; exit 1; }
fi
replica=$([ -n "$standby" ] && echo true || echo false)

check=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer bench-1' 'http://127.0.0.1:3980/api/v1/timelines/home?limit=20')
[ "$check" = 200 ] || { echo "home answered $check, not 200: the feeds are not in place" >&2; exit 1; }

# Where the machine goes: the CPU time of the web and delivery processes, of every PostgreSQL
# process and of Redis, and the machine's busy time, read before and after a run and divided by
# its requests (loadtest/cpusample.py). "rest" is the machine's time beyond those four: the load
# generator, the kernel's interrupt work (loopback TCP) and anything else running.
cpu_ticks() {
    python3 loadtest/cpusample.py --snapshot web="$web_pid" delivery="$delivery_pid"
}
# cpu_per_request BEFORE AFTER REQUESTS: microseconds of CPU per request, as JSON.
cpu_per_request() {
    python3 loadtest/cpusample.py --per-request "$1" "$2" "$3" web delivery postgres redis-server |
        jq -c '.redis = ."redis-server" | del(."redis-server")'
}

# One wrk script per route: each request signed by a random one of the accounts' tokens.
lua() {
    cat <<LUA
local threads = {}
function setup(thread)
    table.insert(threads, thread)
end
function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
    other = 0
end
request = function()
    local n = math.random(1, ${2:-$accounts})
    return wrk.format("GET", "$1", {["Authorization"] = "Bearer bench-" .. n})
end
response = function(status, headers, body)
    if status ~= 200 then other = other + 1 end
end
done = function(summary, latency, requests)
    local non200 = 0
    for _, t in ipairs(threads) do non200 = non200 + t:get("other") end
    io.write(string.format('{"requests":%d,"seconds":%.1f,"rps":%.0f,"p50_ms":%.1f,"p90_ms":%.1f,"p99_ms":%.1f,"max_ms":%.1f,"errors":%d,"non_200":%d}\\n',
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
        latency.max / 1000, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status, non200))
end
LUA
}

routes=(home_timeline /api/v1/timelines/home?limit=20
        local_timeline '/api/v1/timelines/public?local=true&limit=20'
        federated_timeline /api/v1/timelines/public?limit=20
        hashtag_timeline /api/v1/timelines/tag/surge?limit=20)
for ((i = 0; i < ${#routes[@]}; i += 2)); do
    check=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer bench-1' "http://127.0.0.1:3980${routes[i+1]}")
    [ "$check" = 200 ] || { echo "${routes[i]} answered $check, not 200" >&2; exit 1; }
done

# Cold: the web process has just started, its caches (tokens, statuses, accounts) are empty.
lua /api/v1/timelines/home?limit=20 >"$script"
echo "home, cold caches, ${connections[0]} connections, 5 s" >&2
wrk -t2 -c"${connections[0]}" -d5s -s "$script" http://127.0.0.1:3980 | tail -1 |
    jq -c --argjson c "${connections[0]}" '{benchmark: "home_timeline_cold", connections: $c} + .'

# The ceiling answers with a real home page's bytes.
body=$(mktemp --suffix=.json)
curl -s -H 'Authorization: Bearer bench-1' 'http://127.0.0.1:3980/api/v1/timelines/home?limit=20' >"$body"
"$bin/stampede-loadtest" json-ceiling --port 3982 --body "$body" & pids+=($!)
for _ in $(seq 1 100); do curl -fs -o /dev/null http://127.0.0.1:3982/ && break; sleep 0.1; done
echo "pages of $(wc -c <"$body") bytes" >&2

lua /api/v1/timelines/home?limit=20 >"$script"
echo "warm-up: 10 s" >&2
wrk -t2 -c8 -d10s -s "$script" http://127.0.0.1:3980 >/dev/null
for c in "${connections[@]}"; do
    lua / >"$script"
    echo "ceiling, $c connections, $seconds s" >&2
    ceiling=$(wrk -t2 -c"$c" -d"${seconds}s" -s "$script" http://127.0.0.1:3982 | tail -1)
    echo "$ceiling" | jq -c --argjson c "$c" '{benchmark: "json_ceiling", connections: $c} + .'
    for ((i = 0; i < ${#routes[@]}; i += 2)); do
        lua "${routes[i+1]}" >"$script"
        echo "${routes[i]}, $c connections, $seconds s" >&2
        before=$(cpu_ticks)
        result=$(wrk -t2 -c"$c" -d"${seconds}s" -s "$script" http://127.0.0.1:3980 | tail -1)
        cpu=$(cpu_per_request "$before" "$(cpu_ticks)" "$(echo "$result" | jq .requests)")
        echo "$result" |
            jq -c --arg b "${routes[i]}" --argjson c "$c" --argjson ceiling "$ceiling" --argjson replica "$replica" --argjson cpu "$cpu" \
                '{benchmark: $b, connections: $c, replica: $replica} + . + {ceiling_rps: $ceiling.rps, ratio: ((.rps / $ceiling.rps * 1000 | round) / 1000), cpu_us_per_request: $cpu}'
    done
done
rm -f "$body"

# Returning inactive accounts: the home feeds of 2,000 accounts are gone from Redis, so each
# one's first page is read from PostgreSQL (206, "being regenerated") while the feed is rebuilt
# in the background; later pages come from the rebuilt feed. non_200 counts the 206 answers.
returning=2000
seq 1 "$returning" | sed "s|.*|DEL $ns:feed:home:& $ns:feed:home:&:ready|" |
    redis-cli -n "$redis_db" >/dev/null
lua /api/v1/timelines/home?limit=20 "$returning" >"$script"
echo "home, $returning returning accounts, ${connections[0]} connections, 5 s" >&2
wrk -t2 -c"${connections[0]}" -d5s -s "$script" http://127.0.0.1:3980 | tail -1 |
    jq -c --argjson c "${connections[0]}" --argjson n "$returning" \
        '{benchmark: "home_timeline_returning", connections: $c, accounts: $n} + .'

if [ "${POSTING:-0}" = 1 ]; then
    post_script=$(mktemp --suffix=.lua)
    cat >"$post_script" <<LUA
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
    other = 0
end
request = function()
    local n = math.random(1, $accounts)
    return wrk.format("POST", "/api/v1/statuses",
        {["Authorization"] = "Bearer bench-" .. n, ["Content-Type"] = "application/json"},
        '{"status":"sustained posting from ' .. n .. '"}')
end
$([ -z "${POST_DELAY_MS:-}" ] || echo "function delay() return ${POST_DELAY_MS} end")
response = function(status, headers, body)
    if status ~= 200 then other = other + 1 end
end
done = function(summary, latency, requests)
    local non200 = 0
    for _, t in ipairs(threads) do non200 = non200 + t:get("other") end
    io.write(string.format('{"requests":%d,"seconds":%.1f,"rps":%.0f,"p50_ms":%.1f,"p99_ms":%.1f,"non_200":%d}\\n',
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, non200))
end
LUA
    # The delivery process's histograms over one run (the difference of two scrapes): the outbox
    # relay (commit → broker confirm), the distribute queue (commit → worker received) and
    # fan-out (commit → last feed written), so a lag shows where it builds up.
    fanout_buckets() {
        curl -fs http://127.0.0.1:3981/metrics | grep -E '^stampede_(fanout_duration_seconds|outbox_publish_lag_seconds)_bucket|^stampede_queue_message_age_seconds_bucket\{.*queue="distribute"'
    }
    for c in "${connections[@]}"; do
        before=$(fanout_buckets)
        ticks=$(cpu_ticks)
        lua /api/v1/timelines/home?limit=20 >"$script"
        wrk -t1 -c8 -d"${seconds}s" -s "$script" http://127.0.0.1:3980 | tail -1 >"$script.readers" &
        readers=$!
        echo "sustained posting, $c connections, $seconds s, 8 home readers beside" >&2
        posts=$(wrk -t1 -c"$c" -d"${seconds}s" -s "$post_script" http://127.0.0.1:3980 | tail -1)
        wait "$readers"
        sleep 5 # the last fan-outs finish
        after=$(fanout_buckets)
        # Per post, with the readers' pages counted in: what posting and reading cost together.
        cpu=$(cpu_per_request "$ticks" "$(cpu_ticks)" "$(echo "$posts" | jq .requests)")
        lag=$(python3 - "$before" "$after" <<'PY'
import json, sys
def parse(text):
    out = {}
    for line in text.splitlines():
        le = line.split('le="')[1].split('"')[0]
        out[le] = float(line.rsplit(' ', 1)[1])
    return out
before, after = sys.argv[1], sys.argv[2]
out = {}
for metric, name in [('fanout_duration', 'fanout'), ('outbox_publish_lag', 'outbox_publish'),
                     ('queue_message_age', 'distribute_received')]:
    pick = lambda text: '\n'.join(l for l in text.splitlines() if l.startswith('stampede_' + metric))
    b, a = parse(pick(before)), parse(pick(after))
    rows = sorted(((float('inf') if le == '+Inf' else float(le)), a[le] - b.get(le, 0)) for le in a)
    total = rows[-1][1] if rows else 0
    def q(p):
        for le, n in rows:
            if n >= p * total:
                return None if le == float('inf') else round(le * 1000, 1)
    out[name + 's'] = int(total)
    out[name + '_p50_ms_at_most'] = q(0.5)
    out[name + '_p99_ms_at_most'] = q(0.99)
print(json.dumps(out))
PY
)
        jq -c -n --argjson c "$c" --argjson posts "$posts" --argjson readers "$(cat "$script.readers")" \
            --argjson lag "$lag" --argjson cpu "$cpu" '{benchmark: "sustained_posting", connections: $c, posts: $posts,
              feed_inserts_per_s: ($posts.rps * 200), home_readers: $readers} + $lag
              + {cpu_us_per_post: $cpu}
              + {all_fanned_out: ($lag.fanouts >= $posts.requests - $posts.non_200)}'
    done
    rm -f "$post_script" "$script.readers"
fi
if [ -n "$standby" ]; then
    # Which pool served the lag-tolerant reads of the whole run.
    curl -fs http://127.0.0.1:3980/metrics | awk '/^stampede_db_reads_total/ {
        split($1, a, "\""); reads[a[2]] = $2 }
        END { printf "{\"benchmark\":\"reads_by_pool\",\"replica\":%d,\"primary\":%d}\n", reads["replica"], reads["requests"] }'
fi
