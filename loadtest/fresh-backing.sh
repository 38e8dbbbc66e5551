#!/usr/bin/env bash
# A benchmark's own, empty backing state: `loadtest/fresh-backing.sh DB VHOST [REDIS_DB]` drops
# and creates the PostgreSQL database DB, gives guest an empty RabbitMQ vhost VHOST and, if
# given, empties Redis database REDIS_DB. The services must be running (backing-services.sh).
#
# An existing vhost is kept and its queues emptied: a broker that deleted and re-created vhosts
# (each with its quorum queues) a few dozen times stopped answering `add_vhost` on these
# machines (session 21). FRESH_VHOST=1 deletes and re-creates it instead, for a build whose
# queues are declared with other arguments than the ones already there.
set -euo pipefail
db="$1" vhost="$2" redis_db="${3:-}"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
# A broker that stops answering (see backing-services.sh) fails the benchmark instead of hanging it.
if [ "${FRESH_VHOST:-0}" = 1 ]; then
    timeout 120 rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
fi
if timeout 30 rabbitmqctl -q --no-table-headers list_vhosts | grep -qxF "$vhost"; then
    timeout 30 rabbitmqctl -q --no-table-headers list_queues -p "$vhost" name messages |
        while read -r queue messages; do
            [ "$messages" = 0 ] || timeout 30 rabbitmqctl -q purge_queue -p "$vhost" "$queue" >/dev/null
        done
else
    timeout 60 rabbitmqctl -q add_vhost "$vhost" >/dev/null
fi
timeout 60 rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
if [ -n "$redis_db" ]; then
    redis-cli -n "$redis_db" flushdb >/dev/null
fi
