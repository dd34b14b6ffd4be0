"""A change refused because its object has already moved on: an alert already acknowledged or resolved, a
checkpoint already completed or cancelled. It is a ValidationError (forms and the admin show it under
"state", as any other refusal); the JSON API answers it with 409 Conflict and the state the object is in."""

from django.core.exceptions import ValidationError


class StateConflict(ValidationError):
    def __init__(self, message: str, *, state: str):
        super().__init__({"state": [message]})
        self.state = state
