#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 for the test suite: start them if installed but
# stopped, install them from Debian packages if absent and running as root, otherwise say what to do.
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
    local name=$1 port=$2
    for _ in $(seq 1 60); do
        listening "$port" && return 0
        sleep 0.5
    done
    echo "ensure-services: $name did not start listening on 127.0.0.1:$port" >&2
    exit 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

apt_install() {
    echo "ensure-services: installing $* from Debian packages" >&2
    apt-get update -qq  # a stale list can name versions the mirror no longer has
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
    listening "$PG_PORT" && return 0
    if ! command -v pg_ctlcluster >/dev/null; then
        if can_install; then
            apt_install postgresql
        else
            echo "ensure-services: PostgreSQL is not running on 127.0.0.1:$PG_PORT and is not installed." >&2
            echo "  Install it (Debian/Ubuntu: sudo apt-get install postgresql) or set TEST_DATABASE_URL." >&2
            exit 1
        fi
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL "$PG_PORT"
    # A fresh Debian cluster asks for a password on TCP; give the postgres role the one the tests use.
    if [ "$(id -u)" = 0 ]; then
        su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
    fi
}

ensure_redis() {
    # The fault-injection tests start redis-servers of their own, so the binary must be there too.
    if ! command -v redis-server >/dev/null && can_install; then
        apt_install redis-server
    fi
    listening "$REDIS_PORT" && return 0
    if ! command -v redis-server >/dev/null; then
        if can_install; then
            apt_install redis-server
        else
            echo "ensure-services: Redis is not running on 127.0.0.1:$REDIS_PORT and is not installed." >&2
            echo "  Install it (Debian/Ubuntu: sudo apt-get install redis-server) or set TEST_REDIS_URL." >&2
            exit 1
        fi
    fi
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    local dir=/var/lib/redis log=/var/log/redis/ci.log
    [ -w "$dir" ] || { dir=$(mktemp -d); log="$dir/redis.log"; }
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir "$dir" --logfile "$log"
    wait_for Redis "$REDIS_PORT"
}

ensure_postgres
ensure_redis
echo "ensure-services: PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT are up"
