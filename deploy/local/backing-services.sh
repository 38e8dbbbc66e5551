#!/usr/bin/env bash
# Starts (or checks) the backing services Stampede's tests use on this machine: PostgreSQL,
# Redis and RabbitMQ on their standard loopback ports. Installs them from Debian's packages if
# they are missing. Usage: deploy/local/backing-services.sh [postgres|redis|rabbitmq ...]
# (no argument: all three). Safe to run again; it changes nothing that already works.
set -euo pipefail

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(postgres redis rabbitmq)

log() { printf 'backing-services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds name
    for _ in $(seq 1 "$(( $2 * 5 ))"); do port_open "$1" && return 0; sleep 0.2; done
    log "$3 did not open port $1 within $2 s"; return 1
}

apt_install() {
    if ! command -v apt-get >/dev/null; then
        log "cannot install $*: no apt-get; install them yourself"; exit 1
    fi
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    log "installing $* from Debian's packages"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

postgres() {
    if port_open 5432; then
        log "PostgreSQL is up"
    else
        command -v pg_ctlcluster >/dev/null || apt_install postgresql
        local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
        log "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        wait_port 5432 60 PostgreSQL
    fi
    allow_replication
}

# The read-replica test copies the server with pg_basebackup over a replication connection from
# 127.0.0.1, which Debian's pg_hba.conf does not allow by default (trust, as for the tests' own
# connections). Only a local Debian cluster's file is touched, and only once.
allow_replication() {
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | sort -V | tail -n1)
    [ -n "$hba" ] && [ -w "$hba" ] || return 0
    grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$hba" && return 0
    log "allowing replication connections from 127.0.0.1 (the read-replica test)"
    printf '%s\n' 'host replication all 127.0.0.1/32 trust' >> "$hba"
    local version; version=$(basename "$(dirname "$(dirname "$hba")")")
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
}

redis() {
    if port_open 6379; then log "Redis is up"; return; fi
    command -v redis-server >/dev/null || apt_install redis-server
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_port 6379 30 Redis
}

rabbitmq() {
    if ! port_open 5672; then
        command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
        log "starting RabbitMQ"
        # Detached, it would still hold this script's output open (and a pipe reading it).
        rabbitmq-server -detached >/dev/null 2>&1
        wait_port 5672 120 RabbitMQ
    else
        log "RabbitMQ is up"
    fi
    rabbitmq_answers && return 0
    # A broker can hold its port open and answer nothing (seen after many benchmark runs had each
    # made and dropped a vhost): every rabbitmqctl call then waits forever. Restart it once.
    log "RabbitMQ holds its port but does not answer rabbitmqctl within 90 s; restarting it"
    timeout 60 rabbitmqctl -q stop >/dev/null 2>&1 || pkill -9 -f 'beam.*rabbit' || true
    for _ in $(seq 1 50); do port_open 5672 || break; sleep 0.2; done
    rabbitmq-server -detached >/dev/null 2>&1
    wait_port 5672 120 RabbitMQ
    rabbitmq_answers && return 0
    log "RabbitMQ still does not answer after a restart. Its stored state may be damaged: stop it,"
    log "move its data directory (/var/lib/rabbitmq/mnesia) aside (this drops its vhosts, users"
    log "and queues) and start it again"
    exit 1
}

# Generous: on a loaded two-core machine each rabbitmqctl call starts an Erlang VM of its own,
# and a slow broker must not be taken for a stuck one.
rabbitmq_answers() {
    timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1 \
        && timeout 30 rabbitmqctl -q list_vhosts >/dev/null 2>&1
}

for service in "${want[@]}"; do
    case "$service" in
        postgres|redis|rabbitmq) "$service" ;;
        *) log "unknown service $service (postgres, redis, rabbitmq)"; exit 2 ;;
    esac
done
