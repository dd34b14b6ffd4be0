"""The e-mailed link that lets a staff member enrol their authenticator: the second proof, besides the
password, that the person enrolling owns the account. Single use, short-lived, stored as a digest."""

from django.conf import settings
from django.db import models


class EnrolmentLinkQuerySet(models.QuerySet):
    def usable(self, *, at):
        return self.filter(used_at__isnull=True, expires_at__gt=at)


class EnrolmentLink(models.Model):
    """Made when its e-mail is built (only the SHA-256 digest of the token is kept); used once, by a
    POST, which hands the proof to that browser's session until `expires_at`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    objects = EnrolmentLinkQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Two-factor enrolment link #{self.pk}"
