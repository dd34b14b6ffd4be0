"""Where a webhook may go: public addresses only, over https:// (one rule, applied twice).

An endpoint's URL is checked where it is saved (a field error naming the reason), and the address a
send connects to is checked again after DNS resolution, on that very address (alerts/webhook_http.py),
because a name can resolve elsewhere later. Refused: loopback, private, link-local, multicast,
unspecified (0.0.0.0, ::) and reserved or otherwise non-global addresses. Loopback, and plain
http:// to it, is allowed only with `settings.WEBHOOK_ALLOW_LOOPBACK` (a receiver on this machine in
development and tests; production refuses to start with it).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

HTTPS_REQUIRED = "https:// required (http:// only to this machine in development)"


def address_problem(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not connect to `address`, in a few words for staff, or None."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        ip = ip.ipv4_mapped
    if ip.is_unspecified:  # before loopback: 0.0.0.0 reaches this machine too
        return "unspecified address"
    if ip.is_loopback:
        return None if settings.WEBHOOK_ALLOW_LOOPBACK else "loopback"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private network"
    if not ip.is_global:
        return "reserved"
    return None


def connection_problem(scheme: str, address: str) -> str | None:
    """Why a send over `scheme` may not connect to the resolved `address`, or None."""
    problem = address_problem(address)
    if problem:
        return f"address not allowed: {problem}"
    if scheme != "https" and not ipaddress.ip_address(address).is_loopback:
        return f"address not allowed: {HTTPS_REQUIRED}"
    return None


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook endpoint, or None. A host name is resolved and every address it
    has is checked; a name that does not resolve yet is left to the check at send time."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"address not allowed: {HTTPS_REQUIRED}"
    if parts.username or parts.password:
        return "a user name or password in the URL is not allowed"
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        addresses = set()
    for address in sorted(addresses):
        problem = connection_problem(parts.scheme, address.split("%", 1)[0])
        if problem:
            return problem
    if parts.scheme == "http" and not settings.WEBHOOK_ALLOW_LOOPBACK:
        return f"address not allowed: {HTTPS_REQUIRED}"
    return None
