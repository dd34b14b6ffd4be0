"""Request rate per API client (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"])."""

from rest_framework.throttling import SimpleRateThrottle

from .auth import principal_key


class ClientRateThrottle(SimpleRateThrottle):
    """Per-client (or per-user) request rate, from `API_THROTTLE_RATE`; anonymous callers by address.
    Not a security boundary (RELIABILITY.md §3): rate-limit at the proxy too."""

    scope = "client"

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            return self.cache_format % {"scope": self.scope, "ident": principal_key(request)}
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
