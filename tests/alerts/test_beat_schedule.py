"""The beat schedule: one entry per sweep, each naming a task the worker knows; and the task that
services enqueue by name exists under that name."""

from celery import current_app
from django.conf import settings

from alerts.outbox import DELIVER_TASK


def registered_tasks() -> set[str]:
    current_app.loader.import_default_modules()  # the apps' tasks modules, as a worker loads them
    return set(current_app.tasks)


def test_every_beat_entry_names_a_registered_task():
    known = registered_tasks()

    unknown = {name: e["task"] for name, e in settings.CELERY_BEAT_SCHEDULE.items() if e["task"] not in known}

    assert unknown == {}


def test_every_sweep_task_has_a_beat_entry_of_its_own():
    scheduled = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    sweeps = {name for name in registered_tasks() if ".tasks.sweep_" in name}

    assert sorted(set(scheduled)) == sorted(scheduled)  # no task twice
    assert sweeps <= set(scheduled)
    assert len(sweeps) >= 7  # checkpoints, escalations, checkpoint webhooks, reminders, check-ins, digests, outbox


def test_the_delivery_task_that_services_enqueue_by_name_is_registered_under_that_name():
    assert DELIVER_TASK in registered_tasks()
