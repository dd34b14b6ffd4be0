"""The webhook POST: to a vetted address only, within one deadline, never following a redirect.

requests-hardened's adapter resolves the host name once and pins the connection to that address
(TLS still sends SNI for, and checks the certificate against, the host name). The pinned address is
checked here with the rule of alerts/webhook_addresses.py before any byte is sent, so nothing
re-resolves between the check and the connection. A timer shuts the socket down when the delivery's
deadline is reached, so DNS, connect, TLS, sending and reading the answer share one wall-clock limit
and a receiver dripping its answer byte by byte is cut there. The answer's body is never read and
nothing of it (body, headers, reason phrase) is kept: only its status code.
"""

import socket
import threading
import time

import requests
from django.conf import settings
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .webhook_addresses import address_problem, connection_problem


class SendFailed(Exception):
    """What failed, in words fit for staff (never the receiver's own text). `refused`: no connection
    was attempted because the address is not allowed."""

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused


_local = threading.local()


class _Deadline:
    """Shuts down every socket opened under it when `seconds` have passed."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        """Watch the connection of `sock` through a duplicate of its descriptor: TLS wrapping detaches
        the original socket object, and shutting the duplicate down ends the connection all the same."""
        duplicate = sock.dup()
        with self.lock:
            self.sockets.append(duplicate)
            if self.expired:
                _shut(duplicate)

    def close(self) -> None:
        self.timer.cancel()
        with self.lock:
            for sock in self.sockets:
                sock.close()

    def remaining(self) -> float:
        return max(0.001, self.ends - time.monotonic())

    def _expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    def _new_conn(self):
        sock = super()._new_conn()
        deadline = getattr(_local, "deadline", None)
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class VettedAdapter(IPFilterAdapter):
    """requests-hardened's pinning adapter, with our address rule on the pinned address and
    connections watched by the delivery's deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        try:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        except InvalidIPAddress as exc:
            why = address_problem(exc.args[0]) or "reserved"
            raise SendFailed(f"address not allowed: {why}", refused=True) from exc
        problem = connection_problem(host_params["scheme"], host_params["host"].strip("[]"))
        if problem:
            raise SendFailed(problem, refused=True)
        return host_params, pool_kwargs


def post(url: str, body: bytes, headers: dict[str, str], *, deadline_seconds: float) -> int:
    """POST `body` to `url` and return the answer's status code (a redirect is returned, not
    followed); raise SendFailed saying what failed."""
    deadline = _Deadline(deadline_seconds)
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: a proxy would resolve the name again
    loopback = settings.WEBHOOK_ALLOW_LOOPBACK
    session.mount("http://", VettedAdapter(is_https_proto=False, allow_loopback=loopback))
    session.mount("https://", VettedAdapter(is_https_proto=True, allow_loopback=loopback))
    _local.deadline = deadline
    deadline.timer.start()
    try:
        response = session.post(
            url,
            data=body,
            headers=headers,
            timeout=(deadline.remaining(), deadline.remaining()),
            allow_redirects=False,
            stream=True,  # the body is never read
        )
        response.close()
        if deadline.expired:
            raise SendFailed(f"timed out after {deadline_seconds:g} s")
        return response.status_code
    except requests.RequestException as exc:
        raise SendFailed(_what_failed(exc, deadline)) from exc
    finally:
        deadline.close()
        _local.deadline = None
        session.close()


def _what_failed(exc: requests.RequestException, deadline: _Deadline) -> str:
    if deadline.expired or isinstance(exc, requests.Timeout) or _caused_by(exc, TimeoutError):
        return f"timed out after {deadline.seconds:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake or certificate check failed"
    if _caused_by(exc, socket.gaierror) or "resolve" in str(exc.args[:1]):
        return "host name did not resolve"
    if _caused_by(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return "request failed"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is anywhere in the chain of `exc` (causes, contexts, urllib3's `reason`)."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += [arg for arg in current.args if isinstance(arg, BaseException)]
    return False
