"""The Celery app. Tasks only execute; the database holds what is scheduled or pending."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kyphofollow.settings")

app = Celery("kyphofollow", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender=None, **kwargs) -> None:
    """Database connections live across tasks as they do across requests: kept for CONN_MAX_AGE,
    health-checked before reuse, closed after an error. (Celery's own Django fixup would close them
    before and after every task, making each task open a new PostgreSQL connection; settings'
    CELERY_DB_REUSE_MAX turns that down to a periodic recycle.)"""
    from django.db import close_old_connections

    if not getattr(getattr(sender, "request", None), "is_eager", False):  # eager: the caller's connection
        close_old_connections()


@task_prerun.connect
def _audit_as_task(**kwargs) -> None:
    """Whatever a task writes is audited as done by a background task."""
    from patients.audit import act_as_task

    act_as_task()


_options = app.conf.broker_transport_options or {}
for _key in ("data_folder_in", "data_folder_out", "control_folder"):
    if _key in _options:
        # kombu's filesystem transport expects its folders to exist.
        os.makedirs(_options[_key], exist_ok=True)
