"""An uploaded import file between its preview and its confirmation: a row that expires, never the session."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

# A preview not confirmed within this long is deleted (by the retention sweep) and must be uploaded again. [DESIGN]
IMPORT_PREVIEW_LIFETIME = timedelta(minutes=30)


class ImportPreviewQuerySet(models.QuerySet):
    def current(self):
        return self.filter(expires_at__gt=timezone.now())

    def expired(self):
        return self.filter(expires_at__lte=timezone.now())


class ImportPreview(models.Model):
    """The bytes of a previewed file, for its uploader only; deleted when confirmed and when expired."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    clinic = models.ForeignKey("patients.Clinic", on_delete=models.CASCADE, related_name="+")
    file_name = models.CharField(max_length=255)
    digest = models.CharField(max_length=64)
    content = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    objects = ImportPreviewQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user"], name="one_import_preview_per_user")]

    def __str__(self) -> str:
        return f"import preview {self.pk} (expires {self.expires_at:%Y-%m-%d %H:%M})"

    @classmethod
    def keep(cls, *, user, clinic, file_name: str, digest: str, content: bytes) -> "ImportPreview":
        """Store this file as the user's one current preview, replacing any earlier one."""
        preview, _ = cls.objects.update_or_create(
            user=user,
            defaults={
                "clinic": clinic,
                "file_name": file_name[:255],
                "digest": digest,
                "content": content,
                "expires_at": timezone.now() + IMPORT_PREVIEW_LIFETIME,
            },
        )
        return preview
