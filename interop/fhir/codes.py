"""The FHIR facade's code systems, extensions and code mappings (docs/fhir.md): what each coded value it
writes or accepts means in the registry. The codes an EHR sends (SNOMED CT vertebrae, RxNorm, ATC and
SNOMED CT osteoporosis medicines) are data, each with its source: native_codes.toml."""

import tomllib
from pathlib import Path

from alerts.models import AlertState
from patients.models import CheckpointState
from patients.models.procedure import VERTEBRAE

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
EXT_DROPPED_ANSWER = f"{STRUCTURE}/dropped-answer"
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
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
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

# Osteoporosis medicines recognised by name in a text or display (docs/fhir.md); by code: MEDICATION_CODES.
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


NATIVE_CODES_FILE = Path(__file__).with_name("native_codes.toml")
MEDICATION_SYSTEMS = {RXNORM: "RxNorm", ATC: "ATC", SNOMED: "SNOMED CT"}


def _native_codes(path: Path = NATIVE_CODES_FILE) -> dict[str, list[dict]]:
    """The code tables, each entry checked: a system, a code, a display and a source; a vertebra names a
    level T1–L5, a medication the drug it is. A bad entry stops start-up with the file and the entry."""
    with path.open("rb") as handle:
        tables = tomllib.load(handle)
    wanted = {"vertebra": {"level", "system", "code", "display", "source"}}
    wanted["medication"] = {"drug", "system", "code", "display", "source"}
    for table, keys in wanted.items():
        for index, entry in enumerate(tables.get(table, [])):
            missing = sorted(key for key in keys if not str(entry.get(key, "")).strip())
            problem = f"missing {', '.join(missing)}" if missing else ""
            if table == "vertebra" and entry.get("level") not in VERTEBRAE:
                problem = problem or f"level {entry.get('level')!r} is not one of T1–L5"
            if table == "medication" and entry.get("match", "exact") not in {"exact", "prefix"}:
                problem = problem or "match must be exact or prefix"
            if problem:
                raise ValueError(f"{path.name}: [[{table}]] entry {index + 1} ({entry.get('code')!r}): {problem}")
    return tables


_TABLES = _native_codes()
# (system, code) -> level T1–L5.
VERTEBRA_CODES = {(e["system"], e["code"]): e["level"] for e in _TABLES["vertebra"]}
# Level -> the SNOMED CT coding added on read (the first entry of each level: the whole vertebra).
VERTEBRA_SNOMED = {
    e["level"]: {"system": e["system"], "code": e["code"], "display": e["display"]}
    for e in reversed(_TABLES["vertebra"])
    if e["system"] == SNOMED
}
MEDICATION_CODES = {(e["system"], e["code"]): e for e in _TABLES["medication"] if e.get("match", "exact") == "exact"}
MEDICATION_PREFIXES = [e for e in _TABLES["medication"] if e.get("match") == "prefix"]


def medication_entry(coding: dict) -> dict | None:
    """The table entry of an osteoporosis medicine that `coding` names, or None."""
    system, code = coding.get("system"), str(coding.get("code") or "")
    if (system, code) in MEDICATION_CODES:
        return MEDICATION_CODES[(system, code)]
    return next((e for e in MEDICATION_PREFIXES if e["system"] == system and code.startswith(e["code"])), None)
