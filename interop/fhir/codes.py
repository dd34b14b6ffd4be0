"""The FHIR facade's code systems, extensions and code mappings (docs/fhir.md): what each coded value it
writes or accepts means in the registry."""

from alerts.models import AlertState
from patients.models import CheckpointState

BASE = "https://kyphofollow.invalid"
SYSTEM_RULE = f"{BASE}/rule"
SYSTEM_VERTEBRA = f"{BASE}/vertebra"
SYSTEM_PROCEDURE_KIND = f"{BASE}/procedure-kind"
SYSTEM_CHECKPOINT = f"{BASE}/checkpoint"
SYSTEM_CHECKPOINT_OUTPUT = f"{BASE}/checkpoint-output"
SYSTEM_AUDIENCE = f"{BASE}/audience"
SYSTEM_TIER = f"{BASE}/tier"
SYSTEM_ANSWER = f"{BASE}/answer"
SYSTEM_PAINKILLERS = f"{BASE}/painkillers"
STRUCTURE = f"{BASE}/fhir/StructureDefinition"
EXT_FINDING = f"{STRUCTURE}/finding"
EXT_EMAIL_CONSENT = f"{STRUCTURE}/email-consent"
EXT_FRACTURE_DIAGNOSED = f"{STRUCTURE}/fracture-diagnosed-on"
EXT_BASELINE_PAIN = f"{STRUCTURE}/baseline-pain"
EXT_TARGET_DATE = f"{STRUCTURE}/target-date"
EXT_ALERT_STATE = f"{STRUCTURE}/alert-state"
EXT_COMPLETED_CHECKPOINT = f"{STRUCTURE}/completed-checkpoint"
EXT_TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
BCP47 = "urn:ietf:bcp:47"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
QUESTIONNAIRE_ID = "kyphofollow-checkin"
QUESTIONNAIRE_URL = f"{BASE}/fhir/Questionnaire/{QUESTIONNAIRE_ID}"
FHIR_VERSION = "4.0.1"  # R4, as the product promises (resources are validated with the R4B models)

PAIN_LOINC = {
    "system": LOINC,
    "code": "72514-3",
    "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
}

# DXA T-score codes that complete the protocol's dxa / repeat_dxa checkpoint (docs/fhir.md). Any DXA
# T-score site is accepted: the risk profile keeps the lowest T-score the clinician reports, whatever the site.
DXA_T_SCORE_CODES = {
    "38267-1": "DXA Lumbar spine [T-score] Bone density",
    "104938-6": "DXA Spine [T-score] Bone density",
    "38264-8": "DXA Hip [T-score] Bone density",
    "38263-0": "DXA Femur [T-score] Bone density",
}
T_SCORE_UNITS = {"{T-score}", "{Tscore}", "T-score", "Tscore", "SD", "{SD}", "1"}

# Osteoporosis medicines that complete the protocol's medication checkpoint (docs/fhir.md): ATC codes
# (prefix match) or names.
OSTEOPOROSIS_ATC_PREFIXES = ("M05BA", "M05BB", "M05BX03", "M05BX04", "H05AA02")
OSTEOPOROSIS_DRUG_NAMES = (
    "alendron",
    "risedron",
    "ibandron",
    "zoledron",
    "etidron",
    "denosumab",
    "teriparatide",
    "abaloparatide",
    "romosozumab",
    "raloxifene",
    "bazedoxifene",
    "strontium ranelate",
    "fosamax",
    "actonel",
    "boniva",
    "bonviva",
    "aclasta",
    "reclast",
    "prolia",
    "forteo",
    "forsteo",
    "tymlos",
    "evenity",
    "evista",
)

TASK_STATUS = {
    CheckpointState.SCHEDULED: "requested",
    CheckpointState.DUE: "ready",
    CheckpointState.COMPLETED: "completed",
    CheckpointState.MISSED: "failed",
    CheckpointState.CANCELLED: "cancelled",
}
LIVE_ALERT_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)
