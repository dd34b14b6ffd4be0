"""WSGI entry point for bench_api_throughput.py: the real kyphofollow app plus one baseline endpoint.

Not a benchmark (`make bench` runs every bench/*.py, so running this file as a script does nothing).
gunicorn loads it as `bench.baseline_app:application`; it points ROOT_URLCONF at this module, whose
urlpatterns are `kyphofollow.urls` plus

    POST /api/v1/bench-insert/   a DRF APIView with the project's default authentication,
                                 permission and throttle classes that parses the JSON body, inserts
                                 one WorkerHeartbeat row with the ORM and returns 201 JSON.

Same process, settings and middleware as `POST /api/v1/symptom-reports/`, so the two can be compared.
If BENCH_CELERY_QUEUE is set, Celery tasks published by this server go to that queue (so the bench
can purge exactly what it caused).
"""

import os

if __name__ != "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kyphofollow.settings")

    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = __name__
    application = get_wsgi_application()  # django.setup(): DRF's APIView reads the settings' classes

    from django.urls import include, path
    from rest_framework import status
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class BaselineInsertView(APIView):
        """One ORM INSERT behind the same auth/permission/throttle as the real API."""

        def post(self, request):
            from uuid import uuid4

            from django.utils import timezone

            from alerts.models import WorkerHeartbeat

            _ = request.data  # parse the JSON body, as the real endpoint does
            row = WorkerHeartbeat.objects.create(hostname=uuid4().hex, beat_at=timezone.now())
            return Response({"hostname": row.hostname, "beat_at": row.beat_at}, status=status.HTTP_201_CREATED)

    urlpatterns = [
        path("api/v1/bench-insert/", BaselineInsertView.as_view(), name="bench-insert"),
        path("", include("kyphofollow.urls")),
    ]

    if os.environ.get("BENCH_CELERY_QUEUE"):
        from kyphofollow.celery import app as _celery

        _celery.conf.task_default_queue = os.environ["BENCH_CELERY_QUEUE"]
