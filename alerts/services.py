"""Temporary: the old import path of `sweep_reminders` for tests/patients/test_import.py, until its
import names `alerts.reminders`. New code imports from `alerts.reminders`."""

from .reminders import sweep_reminders

__all__ = ["sweep_reminders"]
