"""`celery -A tests.faults.fastbeat beat`: the project's own beat schedule, with every entry ticking every
FAST_BEAT_SECONDS instead of every minute, so that two schedulers race within a test."""

import os

from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kyphofollow.settings")
_seconds = float(os.environ.get("FAST_BEAT_SECONDS", "1"))
settings.CELERY_BEAT_SCHEDULE = {
    name: {**entry, "schedule": _seconds} for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
}

from kyphofollow.celery import app  # noqa: E402 - reads the schedule changed above

__all__ = ["app"]
