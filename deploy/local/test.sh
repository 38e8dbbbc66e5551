#!/usr/bin/env bash
# The whole test suite: starts or checks PostgreSQL, Redis and RabbitMQ, gives the tests a clean
# RabbitMQ vhost and Redis database, then runs every test (unit and integration) of the workspace.
# The S3-protocol and SMTP servers the tests need run inside the test process (s3s-fs,
# mailin-embedded).
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy/local/backing-services.sh postgres redis rabbitmq
# Video, audio and GIF uploads go through ffmpeg (the media tests need it).
deploy/local/need.sh ffmpeg

# Tests isolate themselves by name (database, queue prefix, Redis namespace); a fresh vhost and
# database number per run keeps old runs' leftovers from piling up. The run deletes its vhost
# when it ends, and first deletes what an interrupted run left, each within two minutes. Never
# while tests run: a vhost deleted (with its quorum queues) while other vhosts declared theirs
# left RabbitMQ 3.10 answering nothing about queues, and every test that needed the broker
# waited until it timed out (sessions 21 and 22).
delete_vhost() {
    timeout 120 rabbitmqctl -q delete_vhost "$1" >/dev/null 2>&1 ||
        echo "test.sh: RabbitMQ did not delete the vhost $1 within two minutes" >&2
}
for old in $(timeout 30 rabbitmqctl -q --no-table-headers list_vhosts 2>/dev/null | grep '^stampede_test' || true); do
    delete_vhost "$old"
done
vhost="stampede_test_$(date +%s)_$$"
trap 'delete_vhost "$vhost"' EXIT
timeout 60 rabbitmqctl -q add_vhost "$vhost" >/dev/null \
    && timeout 60 rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null \
    || { echo "test.sh: RabbitMQ did not create the vhost $vhost within a minute" >&2; exit 1; }
redis-cli -n 15 flushdb >/dev/null

export STAMPEDE_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost"
export STAMPEDE_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
export STAMPEDE_TEST_DATABASE_URL="${STAMPEDE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# A real Mastodon client library (Mastodon.py, from PyPI, with websocket-client for its
# WebSocket streaming and its Web Push extras) drives the compatibility tests, and schemathesis
# checks every served operation against Mastodon's OpenAPI description; they live in a virtual
# environment outside the clone.
venv="${STAMPEDE_VENV:-$HOME/.cache/stampede-venv}"
if ! "$venv/bin/python" -c 'import mastodon, websocket, schemathesis, http_ece' >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'Mastodon.py[webpush]==2.3.3' \
        'websocket-client==1.8.0' 'schemathesis==4.32.5'
fi
export STAMPEDE_COMPAT_PYTHON="$venv/bin/python"

# An independent ActivityPub server (Fedify, from the npm registry, pinned in
# interop/fedify/package-lock.json) federates with Stampede in the interop test.
command -v node >/dev/null && command -v npm >/dev/null || deploy/local/need.sh nodejs npm
# and masto.js, a Mastodon client library, both from the npm registry and pinned in
# package-lock.json files.
for package in interop/fedify interop/masto; do
    if ! cmp -s "$package/package-lock.json" "$package/node_modules/.installed-lock" 2>/dev/null; then
        (cd "$package" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$package/package-lock.json" "$package/node_modules/.installed-lock"
    fi
done

# Builds may reuse a cache outside the clone; they also work without one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"

# A shortened migration day (issue 26) against `stampede all` on a small pool: sign-ups, follows,
# posts, favourites, boosts, home reads and streams through the real API, failing on any 5xx.
# Skipped when the caller picks tests (arguments are test filters).
if [ $# -eq 0 ]; then
    cargo build --bin stampede --bin stampede-loadtest
    BIN_DIR="$CARGO_TARGET_DIR/debug" DB_POOL=3 DB_WORKER_POOL=2 SLOS="" RAW_RATE=0 PORT=3970 \
        loadtest/migration-day.sh 30 2 40 200
    # Every fuzz target (fuzz/) for 15 s from the committed corpus: what other servers and users
    # send to the parsers, the sanitizer, the signature checks and the media decoder.
    bash fuzz/run.sh 15
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
