#!/usr/bin/env bash
# A local multi-process Stampede cluster on loopback, in the horizontal shape a large instance
# runs: 2 × web, 2 × streaming, 2 × delivery and 1 × media, on PostgreSQL, Redis and RabbitMQ,
# behind nginx (from Debian's packages) on one address. For load tests (stampede-loadtest's
# surge scenarios) against the real shape rather than `stampede all`.
#
#   deploy/local/cluster.sh start     # build, migrate, start everything, wait until ready
#   deploy/local/cluster.sh status    # each process's /health/ready
#   deploy/local/cluster.sh stop      # stop every process it started (SIGTERM, then SIGKILL)
#   deploy/local/cluster.sh reset     # stop, then drop its database, vhost, Redis db and logs
#   deploy/local/cluster.sh env       # the variables a load test needs (eval "$(… env)")
#   deploy/local/cluster.sh kill web-3101     # SIGKILL one process (the chaos run)
#   deploy/local/cluster.sh restart web-3101  # start it again as `start` did; wait until ready
#
# Everything listens on 127.0.0.1: the load balancer on CLUSTER_PORT (default 3100), web on
# 3101-3102, streaming on 4101-4102, delivery on 4111-4112 and media on 4121 (health and
# metrics). It uses its own database (stampede_cluster), RabbitMQ vhost (stampede_cluster) and
# Redis database (12), so it never touches the test suite's or `run.sh`'s data. State, logs and
# pids live in CLUSTER_DIR (default ~/.cache/stampede-cluster). It stops by itself after
# CLUSTER_TTL seconds (default 7200) so a forgotten cluster does not run for ever.
#
# Sign-up rate limits are off (RATE_LIMITS=false; every load-test client comes from 127.0.0.1);
# set RATE_LIMITS=true to measure them. Any other variable of docs/configuration.md set in the
# environment reaches every process. STAMPEDE_BIN uses a binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir="${CLUSTER_DIR:-$HOME/.cache/stampede-cluster}"
port="${CLUSTER_PORT:-3100}"
ttl="${CLUSTER_TTL:-7200}"
db=stampede_cluster
vhost=stampede_cluster
redis_db=12
web_ports=(3101 3102)
streaming_ports=(4101 4102)
delivery_ports=(4111 4112)
media_ports=(4121)

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

cluster_env() {
    cat <<EOF
export STAMPEDE_URL=http://127.0.0.1:$port
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db
EOF
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_cluster() {
    [ -d "$dir/pids" ] || { log "not running"; return 0; }
    local f pid
    for f in "$dir"/pids/*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        # Only what this script started: the pid file names it, and the process is still ours.
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for _ in $(seq 1 100); do
        local left=0
        for f in "$dir"/pids/*.pid; do [ -e "$f" ] && alive "$f" && left=1; done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    for f in "$dir"/pids/*.pid; do
        [ -e "$f" ] || continue
        alive "$f" && kill -KILL "$(cat "$f")" 2>/dev/null || true
        rm -f "$f"
    done
    log "stopped"
}

status_cluster() {
    local f name p code rc=0
    for f in "$dir"/pids/*.pid; do
        [ -e "$f" ] || { log "not running"; return 1; }
        name=$(basename "$f" .pid)
        [ "$name" = watchdog ] && continue
        if ! alive "$f"; then printf '%-12s dead\n' "$name"; rc=1; continue; fi
        case "$name" in
            nginx) p=$port ;;
            *) p=${name##*-} ;;
        esac
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$p/health/ready" || true)
        printf '%-16s pid %-7s :%-5s ready %s\n' "$name" "$(cat "$f")" "$p" "$code"
        [ "$code" = 200 ] || rc=1
    done
    return $rc
}

ensure_nginx() {
    command -v nginx >/dev/null && return
    [ -x /usr/sbin/nginx ] && { PATH="$PATH:/usr/sbin"; return; }
    command -v apt-get >/dev/null || die "nginx is missing and there is no apt-get: install nginx yourself"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    log "installing nginx from Debian's packages"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 \
        || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null \
        || die "could not install nginx (apt-get install nginx)"
    # Debian's package starts its own nginx on :80 where it can; this cluster does not need it.
    $sudo service nginx stop >/dev/null 2>&1 || true
    command -v nginx >/dev/null || PATH="$PATH:/usr/sbin"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_ready() { # port name seconds
    for _ in $(seq 1 "$(( $3 * 10 ))"); do
        curl -fs --max-time 1 "http://127.0.0.1:$1/health/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$2 on :$1 was not ready within $3 s; see $dir/logs/$2.log"
}

start_cluster() {
    if [ -d "$dir/pids" ] && ls "$dir"/pids/*.pid >/dev/null 2>&1; then
        status_cluster >/dev/null 2>&1 && { log "already running on http://127.0.0.1:$port"; cluster_env; return 0; }
        log "a previous cluster is half up; stopping it first"
        stop_cluster
    fi
    for p in "$port" "${web_ports[@]}" "${streaming_ports[@]}" "${delivery_ports[@]}" "${media_ports[@]}"; do
        port_free "$p" || die "port $p on 127.0.0.1 is taken; stop what uses it (or set CLUSTER_PORT for the balancer)"
    done
    ensure_nginx
    command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
    deploy/local/backing-services.sh postgres redis rabbitmq

    local bin="${STAMPEDE_BIN:-}"
    if [ -z "$bin" ]; then
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
        log "building stampede (release)"
        cargo build --release --bin stampede >&2
        bin="$CARGO_TARGET_DIR/release/stampede"
    fi
    [ -x "$bin" ] || die "$bin is not an executable"

    mkdir -p "$dir"/{pids,logs,media,cmd} "$dir"/nginx-tmp/{body,proxy,fastcgi,uwsgi,scgi}
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
    timeout 60 rabbitmqctl -q add_vhost "$vhost" >/dev/null 2>&1 || true
    timeout 60 rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null

    local base_env=(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
        AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" AMQP_QUEUE_PREFIX=cluster
        REDIS_URL="redis://127.0.0.1:6379/$redis_db" REDIS_NAMESPACE=cluster
        BIND=127.0.0.1 LOG_FORMAT="${LOG_FORMAT:-json}" RUST_LOG="${RUST_LOG:-warn}"
        LOCAL_DOMAIN="${LOCAL_DOMAIN:-stampede.local}" WEB_DOMAIN="${WEB_DOMAIN:-127.0.0.1:$port}"
        LOCAL_HTTPS=false STREAMING_API_BASE_URL="${STREAMING_API_BASE_URL:-ws://127.0.0.1:$port}"
        TRUSTED_PROXY_IP=127.0.0.1 RATE_LIMITS="${RATE_LIMITS:-false}"
        REGISTRATIONS_MIN_AGE="${REGISTRATIONS_MIN_AGE:-16}" PAPERCLIP_ROOT_PATH="$dir/media"
    )
    log "migrating $db"
    env "${base_env[@]}" "$bin" migrate >>"$dir/logs/migrate.log" 2>&1 || die "migration failed; see $dir/logs/migrate.log"

    # Connections per process: DB_POOL for requests, DB_WORKER_POOL for jobs (ADR 0016), plus up
    # to DB_POOL/4 kept for hot paths, one for readiness and one for the relay's LISTEN: about
    # 90 in all, within PostgreSQL's default max_connections of 100.
    start_one() { # service port requests-pool workers-pool
        local name="$1-$2"
        # The command is kept so that `restart NAME` starts the process the same way.
        printf '%q ' exec env "${base_env[@]}" PORT="$2" DB_POOL="$3" DB_WORKER_POOL="$4" "$bin" "$1" \
            >"$dir/cmd/$name"
        launch "$name"
    }
    for p in "${web_ports[@]}"; do start_one web "$p" 12 2; done
    for p in "${streaming_ports[@]}"; do start_one streaming "$p" 4 1; done
    for p in "${delivery_ports[@]}"; do start_one delivery "$p" 3 10; done
    for p in "${media_ports[@]}"; do start_one media "$p" 2 3; done
    for p in "${web_ports[@]}"; do wait_ready "$p" "web-$p" 60; done
    for p in "${streaming_ports[@]}"; do wait_ready "$p" "streaming-$p" 60; done
    for p in "${delivery_ports[@]}"; do wait_ready "$p" "delivery-$p" 60; done
    for p in "${media_ports[@]}"; do wait_ready "$p" "media-$p" 60; done

    local web_servers="" streaming_servers="" user_line=""
    for p in "${web_ports[@]}"; do web_servers+="        server 127.0.0.1:$p max_fails=0;"$'\n'; done
    for p in "${streaming_ports[@]}"; do streaming_servers+="        server 127.0.0.1:$p max_fails=0;"$'\n'; done
    if [ "$(id -u)" = 0 ]; then
        user_line="user nobody nogroup;"
        chown -R nobody:nogroup "$dir/nginx-tmp" 2>/dev/null || true
    fi
    python3 - "$dir" "$port" "$user_line" "$web_servers" "$streaming_servers" <<'PY'
import sys, pathlib
d, port, user, web, streaming = sys.argv[1:]
t = pathlib.Path("deploy/local/cluster-nginx.conf.template").read_text()
for k, v in {"@DIR@": d, "@PORT@": port, "@USER_LINE@": user,
             "@WEB_SERVERS@": web.rstrip("\n"), "@STREAMING_SERVERS@": streaming.rstrip("\n")}.items():
    t = t.replace(k, v)
pathlib.Path(d, "nginx.conf").write_text(t)
PY
    nginx -t -q -c "$dir/nginx.conf" -p "$dir" 2>>"$dir/logs/nginx-error.log" \
        || die "nginx refused $dir/nginx.conf; see $dir/logs/nginx-error.log"
    nginx -c "$dir/nginx.conf" -p "$dir" >>"$dir/logs/nginx.log" 2>&1 &
    echo $! >"$dir/pids/nginx.pid"
    wait_ready "$port" nginx 20

    # The watchdog: stops the cluster after CLUSTER_TTL seconds unless stopped before.
    # A loop of short sleeps, so that `stop` ending the watchdog leaves no sleeper behind.
    (for _ in $(seq 1 "$ttl"); do sleep 1; done; rm -f "$dir/pids/watchdog.pid"; "$0" stop) >/dev/null 2>&1 &
    echo $! >"$dir/pids/watchdog.pid"

    log "ready: http://127.0.0.1:$port (2 web, 2 streaming, 2 delivery, 1 media; logs in $dir/logs; stops by itself in $ttl s)"
    cluster_env
}

launch() { # name: starts it as `start` did, in the background
    bash "$dir/cmd/$1" >>"$dir/logs/$1.log" 2>&1 &
    echo $! >"$dir/pids/$1.pid"
}

kill_one() { # name: SIGKILL, as a crash or an OOM kill would end it
    [ -f "$dir/pids/$1.pid" ] || die "no process $1 (see $0 status)"
    kill -KILL "$(cat "$dir/pids/$1.pid")" 2>/dev/null || true
    log "killed $1"
}

restart_one() { # name: starts it again and waits until it is ready
    [ -f "$dir/cmd/$1" ] || die "no process $1 (see $0 status)"
    alive "$dir/pids/$1.pid" && die "$1 is running"
    launch "$1"
    wait_ready "${1##*-}" "$1" 60
    log "restarted $1"
}

reset_cluster() {
    stop_cluster
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    timeout 120 rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
    redis-cli -n "$redis_db" flushdb >/dev/null
    rm -f "$dir"/logs/*.log
    log "dropped database $db, vhost $vhost and Redis db $redis_db, and the logs"
}

case "${1:-}" in
    start) start_cluster ;;
    reset) reset_cluster ;;
    stop) stop_cluster ;;
    status) status_cluster ;;
    env) cluster_env ;;
    kill) kill_one "${2:?kill NAME, e.g. web-3101}" ;;
    restart) restart_one "${2:?restart NAME, e.g. web-3101}" ;;
    *) echo "usage: $0 start|status|stop|reset|env|kill NAME|restart NAME" >&2; exit 2 ;;
esac
