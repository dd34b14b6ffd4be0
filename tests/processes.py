"""Real outside-world helpers for tests: a Celery worker process, a local SMTP server, a webhook
receiver and a receiver that drips its answer."""

import os
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database the test run is using (pytest-django's test database)."""
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def django_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        {"DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "kyphofollow.settings"}
    )
    env.update(overrides)
    return env


class WorkerProcess:
    """`celery worker` in a child process, talking to the same database and Redis as the test.

    It consumes `queues`: by default both the default queue and the webhook queue, as the Procfile's
    two workers do together; a test of queue isolation starts one worker per queue."""

    def __init__(
        self,
        *,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        queues: tuple[str, ...] = ("celery", "webhooks"),
    ):
        self.log_path = log_path
        self.env = django_env(**(env or {}))
        self.concurrency = concurrency
        self.extra_args = extra_args  # e.g. ("-Q", queue, "--include", module) for a benchmark
        if "-Q" not in extra_args:
            self.extra_args = ("-Q", ",".join(queues), *extra_args)
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "kyphofollow",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={self.concurrency}",
                "--pool=prefork",
                "--without-gossip",
                "--without-mingle",
                f"--hostname=test-{os.getpid()}-{time.monotonic_ns()}@%h",
                *self.extra_args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole worker process group, children included."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class SMTPRecorder:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages: list[Message] = []
        self.arrival_times: list[float] = []
        self.peers: list[tuple[str, int]] = []  # the client address of each message: one per connection
        self.lock = threading.Lock()
        self.fail_next = 0
        self.fail_reply = "451 4.3.0 Try again later"
        self.delay_seconds = 0.0
        self.receiving = threading.Event()  # set when a message starts arriving

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.receiving.set()
        if self.delay_seconds:
            import asyncio

            await asyncio.sleep(self.delay_seconds)
        arrived = time.time()  # the whole message is in; parsing it below is the recorder's own work
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                return self.fail_reply
            self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
            self.arrival_times.append(arrived)
            self.peers.append(tuple(session.peer[:2]))
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self, port: int = 0):
        self.recorder = SMTPRecorder()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=port or free_port())

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def messages(self) -> list[Message]:
        with self.recorder.lock:
            return list(self.recorder.messages)

    def start(self) -> "SMTPServer":
        self.controller.start()
        return self

    def fail(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        """Answer the next `count` messages with `reply` instead of accepting them."""
        with self.recorder.lock:
            self.recorder.fail_next, self.recorder.fail_reply = count, reply

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.controller._thread is not None:  # a test may have stopped it already
            self.controller.stop()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def settled(count, *, quiet_seconds: float, timeout: float, message: str):
    """Wait until `count()` has not changed for `quiet_seconds`; returns the settled value."""
    last, since = count(), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return now
    raise AssertionError(f"timed out after {timeout} s waiting for {message} to settle")


class WebhookReceiver:
    """A local HTTP server that records every POST; `status` sets what it answers, or `statuses` one
    answer per POST in turn (then `status`). A 3xx carries `location`; every answer carries
    `answer_body` and an `x-internal` header (text a delivery's recorded error must never echo);
    `on_request(headers, body)`, if set, runs in the server's thread before it answers."""

    def __init__(self):
        import http.server

        receiver = self
        self.requests: list[dict] = []
        self.status = 204
        self.statuses: list[int] = []
        self.location = ""
        self.answer_body = b""
        self.on_request = None
        self.delay_seconds = 0.0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's hook name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.on_request:
                    receiver.on_request(headers, body)
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                with receiver.lock:
                    receiver.requests.append({"headers": headers, "body": body, "at": time.time()})
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                self.send_response(status)
                if 300 <= status < 400 and receiver.location:
                    self.send_header("location", receiver.location)
                self.send_header("x-internal", "receiver-internal-header-value")
                self.send_header("content-length", str(len(receiver.answer_body)))
                self.end_headers()
                self.wfile.write(receiver.answer_body)

            def log_message(self, *args):
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kyphofollow"

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DripReceiver:
    """A local TCP server that reads a request, then answers one byte of an HTTP status line (or of a
    TLS handshake record) every `interval` seconds, for hours: a receiver no per-read timeout cuts.
    With `tls` (an ssl.SSLContext) it completes a TLS handshake first. `opened` counts connections;
    `connections` records how long each stayed open (seconds), once the client closed it."""

    HTTP = b"HTTP/1.1 200 OK\r\nx-padding: " + b"." * 100000
    # A TLS handshake record announcing 16 KiB, its body dripped: the handshake never completes.
    TLS = b"\x16\x03\x03\x40\x00" + b"\x02" * 16384

    def __init__(self, interval: float = 0.2, answer: bytes = HTTP, tls=None):
        import socket

        self.interval = interval
        self.answer = answer
        self.tls = tls  # an ssl.SSLContext: answer over TLS
        self.connections: list[float] = []
        self.opened = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks/slow"

    def start(self) -> "DripReceiver":
        self.thread.start()
        return self

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn) -> None:
        opened = time.monotonic()
        self.opened += 1
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.recv(65536)
            for byte in self.answer:
                if self.stopped.is_set():
                    break
                conn.sendall(bytes([byte]))
                time.sleep(self.interval)
        except OSError:  # ssl.SSLError included
            pass
        finally:
            self.connections.append(time.monotonic() - opened)
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
