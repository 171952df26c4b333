#!/usr/bin/env bash
# PostgreSQL and Redis for the scale-out tests, from Debian's packages, on 127.0.0.1 only.
#
#   eval "$(bash .ci/services.sh)"     # exports DATABASE_URL and REDIS_URL
#
# Installs `postgresql` and `redis-server` when missing (apt-get; as root, or through sudo),
# then starts a throwaway PostgreSQL cluster (its own data directory, a free port, a password
# superuser `switchboard` and a database `switchboard`) and a Redis server without persistence.
# Idempotent: servers already started by an earlier run are reused. Only the `export` lines go to
# stdout; they are also kept in $SERVICES_DIR/env. `.ci/services.sh stop` stops both.
set -euo pipefail

SERVICES_DIR=${SERVICES_DIR:-/tmp/switchboard-services}
PG_DIR=$SERVICES_DIR/postgresql
PG_DATA=$PG_DIR/data
PG_USER=switchboard
PG_DATABASE=switchboard

say() { echo "services: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The PostgreSQL server refuses to run as root: as root, run it as the `postgres` user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

install_packages() {
    local missing=()
    pg_bin >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ ${#missing[@]} = 0 ] && return
    say "installing ${missing[*]}"
    as_root apt-get update -qq >&2
    # Debian's packages try to start their own default servers; those are not used here.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
}

pg_start() {
    local bin=$1 port=$2
    say "starting PostgreSQL on 127.0.0.1:$port"
    # Throwaway test data: no fsync. Several Daphne workers and test processes connect.
    as_pg "$bin/pg_ctl" start -w -t 60 -D "$PG_DATA" -l "$PG_DIR/server.log" -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$PG_DIR \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=300" >&2 9>&-  # the server must not keep the lock
}

start_postgresql() {
    local bin port password
    bin=$(pg_bin)
    if [ ! -s "$PG_DATA/PG_VERSION" ]; then
        rm -rf "$PG_DIR"
        mkdir -p "$PG_DATA"
        head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PG_DIR/password"
        free_port >"$PG_DIR/port"
        if [ "$(id -u)" = 0 ]; then chown -R postgres: "$PG_DIR"; fi
        chmod 700 "$PG_DIR" "$PG_DATA"
        say "initdb $PG_DATA"
        as_pg "$bin/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$PG_DIR/password" \
            --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    fi
    password=$(cat "$PG_DIR/password")
    if ! as_pg "$bin/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; then
        # The port of an earlier run, unless something else took it meanwhile: then a new one.
        pg_start "$bin" "$(cat "$PG_DIR/port")" || { free_port >"$PG_DIR/port" &&
            pg_start "$bin" "$(cat "$PG_DIR/port")"; } || {
            tail -n 30 "$PG_DIR/server.log" >&2
            exit 1
        }
    fi
    port=$(cat "$PG_DIR/port")
    if ! PGPASSWORD=$password "$bin/psql" -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres \
        -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'" | grep -q 1; then
        PGPASSWORD=$password "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$PG_USER" "$PG_DATABASE"
    fi
    echo "postgres://$PG_USER:$password@127.0.0.1:$port/$PG_DATABASE"
}

start_redis() {
    local port
    if [ -s "$SERVICES_DIR/redis.port" ]; then
        port=$(cat "$SERVICES_DIR/redis.port")
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            echo "redis://127.0.0.1:$port/0"
            return
        fi
    fi
    port=$(free_port)
    say "starting Redis on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no \
        --dir "$SERVICES_DIR" --pidfile "$SERVICES_DIR/redis.pid" \
        --logfile "$SERVICES_DIR/redis.log" >&2 9>&-
    for _ in $(seq 50); do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] \
        || { tail -n 30 "$SERVICES_DIR/redis.log" >&2; exit 1; }
    echo "$port" >"$SERVICES_DIR/redis.port"
    echo "redis://127.0.0.1:$port/0"
}

stop_services() {
    local bin
    bin=$(pg_bin) || true
    if [ -n "$bin" ] && [ -d "$PG_DATA" ]; then
        as_pg "$bin/pg_ctl" stop -D "$PG_DATA" -m fast >&2 || true
    fi
    if [ -s "$SERVICES_DIR/redis.port" ]; then
        redis-cli -h 127.0.0.1 -p "$(cat "$SERVICES_DIR/redis.port")" shutdown nosave >&2 || true
        rm -f "$SERVICES_DIR/redis.port"
    fi
}

mkdir -p "$SERVICES_DIR"
chmod 755 "$SERVICES_DIR"
exec 9>"$SERVICES_DIR/lock"
flock 9  # two runs at once share one pair of servers

if [ "${1:-}" = stop ]; then
    stop_services
    exit 0
fi

install_packages
database_url=$(start_postgresql)
redis_url=$(start_redis)
printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\n' "$database_url" "$redis_url" \
    | tee "$SERVICES_DIR/env"
