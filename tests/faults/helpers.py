"""Fault-injection helpers: a private redis-server, pointing this process's Celery app at it, what the SMTP
server and the webhook receiver got, and sweepers released together (staff in bulk: tests/builders.py)."""

import os
import shutil
import subprocess
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import redis
from kombu import pools

from tests.processes import free_port, wait_until


class RedisServer:
    """A throw-away `redis-server` child process on a free port, with no persistence at all: killing it
    loses every queued task, which is the fault under test. The shared Redis is never touched."""

    def __init__(self, *, log_path: Path | None = None):
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        assert shutil.which("redis-server"), (
            "the fault tests start their own redis-server: install it (Debian: apt-get install redis-server)"
        )
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--daemonize", "no", "--maxmemory-policy", "noeviction"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self.ping, timeout=10, interval=0.05, message=f"redis-server on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def ping(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to the clients."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def queued(self, queue: str = "celery") -> int:
        """Messages waiting in `queue` (not those a worker has reserved)."""
        with self.client() as client:
            return client.llen(queue)


def reset_producer_pools(app) -> None:
    """Forget the cached broker connection and producer pools, so the next publish connects to the
    broker the configuration names now (Celery caches both on first use)."""
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    pools.reset()  # kombu's process-wide connection and producer pools, keyed by broker URL
    control = app.__dict__.get("control")
    if control is not None:
        control.mailbox._producer_pool = None  # the remote-control mailbox caches the pool too


@contextmanager
def celery_broker(url: str):
    """This process's Celery app publishes to `url` (`delay_on_commit` included) inside the block."""
    from kyphofollow.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = url
    reset_producer_pools(app)
    try:
        yield app
    finally:
        reset_producer_pools(app)
        app.conf.broker_url = previous


def delivery_ids_received(smtp_server) -> Counter:
    """Delivery id → how many copies the SMTP server accepted."""
    return Counter(int(message["X-Kyphofollow-Delivery"]) for message in smtp_server.messages)


def webhook_ids_received(receiver) -> Counter:
    """`webhook-id` → how many POSTs the receiver recorded (it records before answering, so a POST the
    sender gave up on by timeout is still counted)."""
    with receiver.lock:
        return Counter(request["headers"]["webhook-id"] for request in receiver.requests)


def run_together(functions, *, timeout: float = 120) -> list:
    """Run each function in its own thread (and so its own database connection), released together by a
    barrier; returns their results, re-raising the first exception."""
    from django.db import connection

    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)
    errors: list[BaseException] = []

    def run(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except BaseException as exc:  # handed to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f), daemon=True) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a concurrent sweeper hung"
    if errors:
        raise errors[0]
    return results


class BeatProcess:
    """`celery -A kyphofollow beat` with the project's own schedule (the delivery sweep every
    DELIVERY_SWEEP_SECONDS), publishing to `broker_url`."""

    def __init__(self, *, broker_url: str, tmp_path: Path, env: dict[str, str] | None = None):
        self.log_path = tmp_path / "beat.log"
        self.schedule = tmp_path / "beat-schedule"
        self.env = {"REDIS_URL": broker_url, "CELERY_BROKER_URL": broker_url, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> "BeatProcess":
        import sys

        from tests.processes import ROOT, django_env

        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "kyphofollow", "beat", "--loglevel=INFO"]
            + ["--schedule", str(self.schedule)],
            cwd=ROOT,
            env=django_env(**self.env),
            stdout=open(self.log_path, "ab"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)


def process_group_sending_from(port: int, server_port: int) -> int | None:
    """The process group (one worker, its pool children included) of the process whose TCP
    connection from local port `port` goes to `server_port`: the worker sending the message the SMTP
    server is receiving."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.raddr and (conn.laddr.port, conn.raddr.port) == (port, server_port) and conn.pid:
            return os.getpgid(conn.pid)
    return None


class HoldingRecorder:
    """An aiosmtpd handler that, while `hold` is set, keeps every message at end-of-DATA without an
    answer (the client's send is in flight) and records nothing unless the answer is given; otherwise
    it accepts. `answer_late` instead records the message at once and answers only after that many
    seconds (a server that keeps the message but is slower than the client's timeout)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hold = True
        self.answer_late = 0.0
        self.raw: list[bytes] = []
        self.arrivals: list[float] = []
        self.attempts: list[tuple[str, float]] = []  # (delivery id, when its DATA ended), refused ones too
        self.refuse: str | None = None  # an SMTP reply to answer every message with (an outage)
        self.in_flight: dict[int, str] = {}  # client port -> delivery id, while held

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        import asyncio
        import time
        from email import message_from_bytes

        raw = envelope.original_content or envelope.content
        delivery = message_from_bytes(raw).get("X-Kyphofollow-Delivery", "")
        port = session.peer[1]
        with self.lock:
            self.attempts.append((delivery, time.time()))
            if self.refuse:
                return self.refuse
            if self.answer_late:
                self.raw.append(raw)
                self.arrivals.append(time.time())
        if self.answer_late:
            await asyncio.sleep(self.answer_late)
            return "250 Message accepted for delivery"
        with self.lock:
            held = self.hold
            if held:
                self.in_flight[port] = delivery
        while held:
            await asyncio.sleep(0.05)  # cancelled when the client goes away
            with self.lock:
                held = self.hold
        with self.lock:
            self.in_flight.pop(port, None)
            self.raw.append(raw)
            self.arrivals.append(time.time())
        return "250 Message accepted for delivery"

    def arrival_of(self, delivery_id: int) -> float | None:
        """When the first copy of `delivery_id` was accepted (or kept)."""
        from email import message_from_bytes

        with self.lock:
            pairs = list(zip(self.raw, self.arrivals, strict=True))
        times = [at for raw, at in pairs if int(message_from_bytes(raw)["X-Kyphofollow-Delivery"]) == delivery_id]
        return min(times, default=None)

    def received(self) -> Counter:
        """Delivery id -> copies accepted (or, with `answer_late`, kept)."""
        from email import message_from_bytes

        with self.lock:
            return Counter(int(message_from_bytes(raw)["X-Kyphofollow-Delivery"]) for raw in self.raw)
