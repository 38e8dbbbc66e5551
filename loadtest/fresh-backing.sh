#!/usr/bin/env bash
# A benchmark's own, empty backing state: `loadtest/fresh-backing.sh DB VHOST [REDIS_DB]` drops
# and creates the PostgreSQL database DB, the RabbitMQ vhost VHOST (guest may use it) and, if
# given, empties Redis database REDIS_DB. The services must be running (backing-services.sh).
set -euo pipefail
db="$1" vhost="$2" redis_db="${3:-}"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
# A broker that stops answering (see backing-services.sh) fails the benchmark instead of hanging it.
timeout 120 rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
timeout 60 rabbitmqctl -q add_vhost "$vhost" >/dev/null
timeout 60 rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
if [ -n "$redis_db" ]; then
    redis-cli -n "$redis_db" flushdb >/dev/null
fi
