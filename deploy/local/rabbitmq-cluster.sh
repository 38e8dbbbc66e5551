#!/usr/bin/env bash
# A RabbitMQ cluster of three nodes on loopback, beside the machine's own broker, for the
# fail-over test (issue 23). Nodes `<name>a@localhost`, `<name>b@localhost` and
# `<name>c@localhost` listen for AMQP on PORT, PORT+1 and PORT+2 (distribution on each +20000),
# keep their data under DIR and share the machine's Erlang cookie (they run as the `rabbitmq`
# user when started by root, as Debian's broker does).
#
#   deploy/local/rabbitmq-cluster.sh start DIR NAME PORT   start the three nodes and join them
#   deploy/local/rabbitmq-cluster.sh kill DIR NODE         SIGKILL one node's Erlang VM
#   deploy/local/rabbitmq-cluster.sh stop DIR              stop every node and remove DIR
set -euo pipefail
server=/usr/lib/rabbitmq/bin/rabbitmq-server
[ -x "$server" ] || server=$(command -v rabbitmq-server)
ctl() { rabbitmqctl -q "$@"; }
as_broker() {
    if [ "$(id -u)" = 0 ]; then runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq "$@"; else "$@"; fi
}

node_start() { # dir node port
    local dir=$1 node=$2 port=$3 home=$1/$2
    mkdir -p "$home"
    printf 'listeners.tcp.local = 127.0.0.1:%s\n' "$port" >"$home/rabbitmq.conf"
    echo '[].' >"$home/enabled_plugins"
    cat >"$home/rabbitmq-env.conf" <<CONF
NODENAME=$node@localhost
DIST_PORT=$((port + 20000))
CONFIG_FILE=$home/rabbitmq.conf
ENABLED_PLUGINS_FILE=$home/enabled_plugins
MNESIA_BASE=$home/mnesia
LOG_BASE=$home/log
PID_FILE=$home/pid
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
    [ "$(id -u)" != 0 ] || chown -R rabbitmq:rabbitmq "$dir"
    (cd "$home" && as_broker env RABBITMQ_CONF_ENV_FILE="$home/rabbitmq-env.conf" "$server" -detached)
}

await() { # node
    for _ in $(seq 1 120); do
        ctl -n "$1@localhost" await_startup -t 5 >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "node $1 did not start" >&2; return 1
}

case "${1:-}" in
start)
    dir=$2 name=$3 port=$4
    command -v rabbitmqctl >/dev/null || { echo "rabbitmq-server is not installed" >&2; exit 1; }
    mkdir -p "$dir"
    offset=0
    for n in a b c; do node_start "$dir" "$name$n" $((port + offset)); offset=$((offset + 1)); done
    await "${name}a"
    for n in b c; do
        await "$name$n"
        ctl -n "$name$n@localhost" stop_app
        ctl -n "$name$n@localhost" join_cluster "${name}a@localhost"
        ctl -n "$name$n@localhost" start_app
    done
    ;;
kill)
    dir=$2 node=$3
    pid=$(cat "$dir/$node/pid")
    kill -9 "$pid"
    ;;
stop)
    dir=$2
    for pidfile in "$dir"/*/pid; do
        [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
*) echo "usage: $0 start DIR NAME PORT | kill DIR NODE | stop DIR" >&2; exit 2 ;;
esac
