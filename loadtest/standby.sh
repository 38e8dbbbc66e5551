#!/usr/bin/env bash
# A streaming read replica of the local PostgreSQL (127.0.0.1:5432) for benchmarks, as the
# read-replica test makes one: pg_basebackup into DIR, a hot standby on PORT.
#
#   loadtest/standby.sh start DIR PORT    copy the server and start the standby (waits for it)
#   loadtest/standby.sh stop DIR          stop it (immediately) and remove DIR
#
# deploy/local/backing-services.sh allows the replication connection from 127.0.0.1.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$bin/pg_ctl" ] || bin=$(dirname "$(command -v pg_ctl)")
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
start)
    dir=$2 port=$3
    mkdir -p "$dir"
    [ "$(id -u)" != 0 ] || chown postgres "$dir"
    as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p 5432 -U postgres -X stream -c fast -R -D "$dir/data"
    # Debian keeps the server's configuration outside its data directory.
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$dir/data/pg_hba.conf"
    touch "$dir/data/postgresql.conf"
    [ "$(id -u)" != 0 ] || chown postgres "$dir/data/pg_hba.conf" "$dir/data/postgresql.conf"
    max=$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW max_connections')
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 120 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$max -c hot_standby=on" start >&2
    ;;
stop)
    dir=$2
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
    rm -rf "$dir"
    ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
