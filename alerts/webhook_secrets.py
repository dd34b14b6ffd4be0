"""Standard Webhooks secrets: a `whsec_` secret that cannot sign a payload is refused where it is saved."""

import base64
import binascii

from django.utils.translation import gettext_lazy as _


def webhook_secret_problem(secret: str) -> str | None:
    """Why `secret` cannot sign Standard Webhooks payloads (`whsec_` + base64 of 24 to 64 bytes), or None."""
    if not secret.startswith("whsec_"):
        return _("The secret must start with whsec_.")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return _("After whsec_ the secret must be base64.")
    if not 24 <= len(key) <= 64:
        return _("The secret must encode 24 to 64 bytes.")
    return None
