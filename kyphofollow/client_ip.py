"""The client address that failed-login lockouts (django-axes) are keyed on.

Behind TRUSTED_PROXY_COUNT reverse proxies, each of which appends the address it was reached from to
X-Forwarded-For, the client is the entry that many places from the right; whatever the client put in
the header itself sits further left and is ignored, so a forged header cannot move a lockout onto
someone else's (username, address) pair. With no proxy the header is not read at all.
"""

from django.conf import settings
from django.http import HttpRequest
from ipware.ip import get_client_ip


def client_ip(request: HttpRequest) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        # django-ipware counts the proxies listed in the header, after the client: the last proxy is
        # the connection itself (REMOTE_ADDR), not an entry. Non-strict: extra left-most entries
        # (forged) are allowed and skipped, never taken as the client.
        address, _ = get_client_ip(
            request, proxy_count=proxies - 1, request_header_order=["HTTP_X_FORWARDED_FOR"], strict=False
        )
        if address:
            return address
    return request.META.get("REMOTE_ADDR")
