"""`GET /health/`: the state of the database, the broker and the last worker heartbeat, and the open
alerts that need someone to look (HAZ-44, HAZ-45). Those are counts, not failures: the service is up
and is still paging them, so they do not turn the status to unavailable."""

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from alerts.escalation import attention_counts
from alerts.models import WorkerHeartbeat

from .celery import app


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except DatabaseError as exc:
        return {"ok": False, "error": f"database unreachable: {type(exc).__name__}"}


def check_broker() -> dict:
    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        return {"ok": True, "transport": conn.transport_cls}
    except Exception as exc:  # kombu raises the transport's own errors
        return {"ok": False, "error": f"broker unreachable: {type(exc).__name__}"}


def check_worker(*, database_ok: bool) -> dict:
    if not database_ok:
        return {"ok": False, "error": "unknown: the database holding heartbeats is down"}
    newest = WorkerHeartbeat.objects.order_by("-beat_at").first()
    if newest is None:
        return {"ok": False, "error": "no worker heartbeat recorded yet"}
    age = timezone.now() - newest.beat_at
    ok = age <= timedelta(seconds=settings.HEALTH_WORKER_MAX_AGE_SECONDS)
    result = {"ok": ok, "last_heartbeat": newest.beat_at.isoformat(), "age_seconds": int(age.total_seconds())}
    if not ok:
        result["error"] = f"last worker heartbeat is older than {settings.HEALTH_WORKER_MAX_AGE_SECONDS} s"
    return result


def check_alerts() -> dict:
    """Open alerts whose escalation chain has run out, and open alerts whose last page reached no one."""
    try:
        return attention_counts()
    except DatabaseError as exc:
        return {"error": f"database unreachable: {type(exc).__name__}"}


@never_cache
@require_GET
def health(request):
    database = check_database()
    checks = {"database": database, "broker": check_broker(), "worker": check_worker(database_ok=database["ok"])}
    down = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ok" if not down else "unavailable", "down": down, "checks": checks}
    if database["ok"]:
        body["alerts"] = check_alerts()
    return JsonResponse(body, status=200 if not down else 503)
