"""Results an EHR sent over FHIR (a DXA Observation, a MedicationStatement or MedicationRequest) that
completed a checkpoint, kept as received so that each is readable at its own URL (docs/fhir.md). They
belong to the patient's record, so they live with the registry; the FHIR views in `interop/fhir/`
write and read them."""

from django.db import models

from .checkpoint import Checkpoint
from .patient import Patient


class FhirResult(models.Model):
    """One accepted result resource. `match_key` is what makes a repeated create a duplicate (patient,
    code and effective date); `identifiers` are the sender's identifiers as `system|value`."""

    resource_type = models.CharField(max_length=40)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    code = models.CharField(max_length=100, help_text="The LOINC code or the drug's code or name.")
    effective_on = models.DateField(null=True, blank=True)
    identifiers = models.JSONField(default=list, blank=True)
    resource = models.JSONField()
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["patient", "resource_type", "code", "effective_on"], name="fhirresult_match"),
            models.Index(fields=["updated_at"], name="fhirresult_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.pk}"
