#!/usr/bin/env bash
# Platform benchmarks (issue: platform): start-to-ready time of `stampede all`, idle memory of
# each process, outbox commit -> publish latency with RabbitMQ, and the no-op consume rate of
# one delivery worker. Everything runs on loopback, is bounded in time, and stops by itself.
# Prints a Markdown report on standard output (paste it into docs/benchmarks.md).
#
#   loadtest/platform.sh            # builds release binaries first
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/local/backing-services.sh postgres redis rabbitmq >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
cargo build --release --bin stampede --bin stampede-loadtest >&2
bin="$CARGO_TARGET_DIR/release"

db=stampede_bench
vhost=stampede_bench
loadtest/fresh-backing.sh "$db" "$vhost"
base_env=(DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" BIND=127.0.0.1 LOG_FORMAT=json RUST_LOG=warn
          PAPERCLIP_ROOT_PATH="$(mktemp -d)")
full_env=("${base_env[@]}" AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=bench
          REDIS_URL="redis://127.0.0.1:6379/14" REDIS_NAMESPACE=bench)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

now_ms() { date +%s%3N; }
wait_ready() { # port -> ms waited (max 60 s)
    local start; start=$(now_ms)
    for _ in $(seq 1 6000); do
        curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null 2>&1 && { echo $(( $(now_ms) - start )); return; }
        sleep 0.01
    done
    echo "never"; return 1
}
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

echo "## Platform benchmarks — $(date -u +%Y-%m-%d), $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -m)"
echo
echo "| measurement | result |"
echo "|---|---|"

# 1. `all` from start to ready: on an empty database (migrations included), then on a migrated one.
env "${base_env[@]}" PORT=3900 STREAMING_PORT=3901 "$bin/stampede" all >/dev/null 2>&1 & pids+=($!)
echo "| \`stampede all\` start → ready, empty database (runs migrations) | $(wait_ready 3900) ms |"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true
env "${base_env[@]}" PORT=3900 STREAMING_PORT=3901 "$bin/stampede" all >/dev/null 2>&1 & pids+=($!)
echo "| \`stampede all\` start → ready, migrated database | $(wait_ready 3900) ms |"
sleep 5
echo "| idle resident memory, \`stampede all\` (in-process queue and cache) | $(rss_mib "${pids[-1]}") MiB |"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true

# 2. Idle memory of each service as its own process, with RabbitMQ and Redis.
for svc in web:3910 streaming:3911 delivery:3912 media:3913; do
    name=${svc%%:*}; port=${svc##*:}
    env "${full_env[@]}" PORT="$port" "$bin/stampede" "$name" >/dev/null 2>&1 & pids+=($!)
    wait_ready "$port" >/dev/null
done
sleep 5
i=$(( ${#pids[@]} - 4 ))
for name in web streaming delivery media; do
    echo "| idle resident memory, \`stampede $name\` | $(rss_mib "${pids[$i]}") MiB |"
    i=$((i + 1))
done
# Leave only web (the relay) running for the latency run: delivery would take the probes.
for p in "${pids[@]:$(( ${#pids[@]} - 3 ))}"; do kill -TERM "$p"; wait "$p" || true; done

# 3. Outbox commit -> received from RabbitMQ (an upper bound on commit -> publish), 200/s for 20 s.
lat=$(env "${full_env[@]}" "$bin/stampede-loadtest" outbox-latency --rate 200 --seconds 20)
echo "| outbox commit → message received, 200 msg/s for 20 s, relay in \`stampede web\` | p50 $(jq -r .commit_to_received_ms.p50 <<<"$lat") ms, p90 $(jq -r .commit_to_received_ms.p90 <<<"$lat") ms, p99 $(jq -r .commit_to_received_ms.p99 <<<"$lat") ms, max $(jq -r .commit_to_received_ms.max <<<"$lat") ms |"

# 4. No-op messages one delivery process consumes per second (prefetch 32 per queue): fill the
#    queue with no worker running, then start one and time the drain (its start-up included).
fill=$(env "${full_env[@]}" "$bin/stampede-loadtest" queue-throughput --messages 100000 --phase fill)
echo "| publishing with confirms (256 in flight, one loadtest process) | $(jq -r .publish_per_s <<<"$fill") msg/s |"
env "${full_env[@]}" PORT=3912 "$bin/stampede" delivery >/dev/null 2>&1 & pids+=($!)
drain=$(env "${full_env[@]}" "$bin/stampede-loadtest" queue-throughput --messages 100000 --phase drain)
echo "| no-op jobs one \`stampede delivery\` consumes (100,000 queued, manual ack each) | $(jq -r .consumed_per_s <<<"$drain") msg/s |"
