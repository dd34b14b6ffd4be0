"""The registry: clinics, their staff, patients, procedures, treated levels, risk assessments, checkpoints
and API clients, one module per noun; every name is importable from `patients.models` as well.

Models in this package belong to the `patients` app without an explicit `app_label`: Django finds the
app from the module path. The import order below is the order the models were declared in before the
split, so the app registry lists them as it did. django-simple-history attaches each `Historical…`
model to the module of the model it records; they are re-exported here too, as they were before.
"""

# isort: off
from .audit import AuditStamp, audit_trail
from .validators import validate_not_in_future
from .clinic import (
    TIME_ZONE_CHOICES,
    Clinic,
    ClinicHoliday,
    ClinicMembership,
    HistoricalClinic,
    HistoricalClinicHoliday,
    HistoricalClinicMembership,
    StaffRole,
    default_protocol_version,
    protocol_version_choices,
)
from .patient import HistoricalPatient, Patient, PatientQuerySet, PatientStatus, Sex
from .procedure import (
    VERTEBRAE,
    CementDistribution,
    HistoricalProcedure,
    HistoricalTreatedLevel,
    LeakSite,
    Procedure,
    ProcedureKind,
    RiskAssessment,
    RiskTier,
    TreatedLevel,
)
from .checkpoint import (
    OPEN_STATES,
    Audience,
    Checkpoint,
    CheckpointEvent,
    CheckpointQuerySet,
    CheckpointState,
)
from .api_client import ApiClient, ApiScope, HistoricalApiClient, IdempotencyRecord
from .result import FhirResult
from .readings import DxaResult, HistoricalDxaResult, PainReading, TierDropReview
from .import_preview import IMPORT_PREVIEW_LIFETIME, ImportPreview
from .enrolment import EnrolmentLink
from .work import CallOutcome, HistoricalWorkItem, WorkItem, WorkKind
# isort: on

__all__ = [
    "CallOutcome",
    "EnrolmentLink",
    "DxaResult",
    "HistoricalDxaResult",
    "HistoricalWorkItem",
    "PainReading",
    "TierDropReview",
    "WorkItem",
    "WorkKind",
    "FhirResult",
    "IMPORT_PREVIEW_LIFETIME",
    "OPEN_STATES",
    "TIME_ZONE_CHOICES",
    "VERTEBRAE",
    "ApiClient",
    "ApiScope",
    "Audience",
    "AuditStamp",
    "CementDistribution",
    "Checkpoint",
    "CheckpointEvent",
    "CheckpointQuerySet",
    "CheckpointState",
    "Clinic",
    "ClinicHoliday",
    "ClinicMembership",
    "HistoricalApiClient",
    "HistoricalClinic",
    "HistoricalClinicHoliday",
    "HistoricalClinicMembership",
    "HistoricalPatient",
    "HistoricalProcedure",
    "HistoricalTreatedLevel",
    "IdempotencyRecord",
    "ImportPreview",
    "LeakSite",
    "Patient",
    "PatientQuerySet",
    "PatientStatus",
    "Procedure",
    "ProcedureKind",
    "RiskAssessment",
    "RiskTier",
    "Sex",
    "StaffRole",
    "TreatedLevel",
    "audit_trail",
    "default_protocol_version",
    "protocol_version_choices",
    "validate_not_in_future",
]
