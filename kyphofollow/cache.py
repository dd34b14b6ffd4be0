"""A Redis cache that fails open: Redis is never on the path that records a report.

The cache only serves API throttling and similar conveniences. With Redis unreachable a read is a
miss and a write is dropped (logged), so a request goes on to the database, which decides; only a
database outage refuses a request (503).
"""

import logging

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def _fail_open(name: str, fallback):
    method = getattr(RedisCache, name)

    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RedisError as exc:
            logger.warning("cache unavailable, %s skipped: %s", name, type(exc).__name__)
            return fallback(*args, **kwargs) if callable(fallback) else fallback

    call.__name__ = name
    return call


def _default(key, default=None, *args, **kwargs):
    return default


class FailOpenRedisCache(RedisCache):
    """Django's RedisCache whose every call answers as an empty cache while Redis is down."""

    get = _fail_open("get", _default)
    set = _fail_open("set", None)
    add = _fail_open("add", False)
    touch = _fail_open("touch", False)
    delete = _fail_open("delete", False)
    get_many = _fail_open("get_many", lambda *a, **k: {})
    set_many = _fail_open("set_many", lambda *a, **k: [])
    delete_many = _fail_open("delete_many", None)
    has_key = _fail_open("has_key", False)
    incr = _fail_open("incr", None)
    clear = _fail_open("clear", False)
    get_or_set = _fail_open("get_or_set", lambda key, default, *a, **k: default() if callable(default) else default)
