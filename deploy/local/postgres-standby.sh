#!/usr/bin/env bash
# A streaming read replica (hot standby) of the local PostgreSQL (127.0.0.1:5432), for the
# read-replica test and the benchmarks: pg_basebackup into DIR, a standby on PORT.
#
#   deploy/local/postgres-standby.sh start DIR PORT   copy the server (unless DIR holds a copy)
#                                                     and start the standby; waits for it
#   deploy/local/postgres-standby.sh stop DIR         stop it at once, keeping DIR
#   deploy/local/postgres-standby.sh remove DIR       stop it and remove DIR
#
# deploy/local/backing-services.sh allows the replication connection from 127.0.0.1. Run as
# root, the standby runs as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$bin/pg_ctl" ] || bin=$(dirname "$(command -v pg_ctl)")
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop() { as_postgres "$bin/pg_ctl" -D "$1/data" -m immediate -w stop >&2 || true; }
case "${1:-}" in
start)
    dir=$2 port=$3
    if [ ! -d "$dir/data" ]; then
        mkdir -p "$dir"
        [ "$(id -u)" != 0 ] || chown postgres "$dir"
        as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p 5432 -U postgres -X stream -c fast -R -D "$dir/data"
        # Debian keeps the server's configuration outside its data directory.
        printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$dir/data/pg_hba.conf"
        touch "$dir/data/postgresql.conf"
        [ "$(id -u)" != 0 ] || chown postgres "$dir/data/pg_hba.conf" "$dir/data/postgresql.conf"
    fi
    # A hot standby needs at least the primary's max_connections.
    max=$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW max_connections')
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 120 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$max -c hot_standby=on" start >&2
    ;;
stop) stop "$2" ;;
remove)
    stop "$2"
    rm -rf "$2"
    ;;
*) echo "usage: $0 start DIR PORT | stop DIR | remove DIR" >&2; exit 2 ;;
esac
