"""FHIR Questionnaire (the check-in, from the rules in force) and QuestionnaireResponse (a symptom report:
read, searched by patient, and created through `submit_report`, the same evaluation as the check-in form)."""

from typing import Any

from django.db import transaction
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from rest_framework.response import Response

from alerts import reports
from alerts.forms import CheckInForm
from alerts.models import PainkillerUse, SymptomReport
from alerts.rules import SO_ANSWERS, Rules, get_rules
from patients.models import Clinic, Patient, Procedure

from ..idempotency import idempotent
from .base import (
    FHIRError,
    FHIRView,
    drop_empty,
    instant_of,
    int_id,
    meta,
    parse_resource,
    ref,
    reference_id,
    validated,
)
from .codes import (
    EXT_DROPPED_ANSWER,
    EXT_FINDING,
    EXT_MAX_VALUE,
    EXT_MIN_VALUE,
    PAIN_LOINC,
    QUESTIONNAIRE_ID,
    QUESTIONNAIRE_URL,
    SYSTEM_ANSWER,
    SYSTEM_PAINKILLERS,
    SYSTEM_RULE,
)
from .search import common_filters, existing_match, page, values
from .versions import VersionedInstanceView

REPORT_BOOLEANS = (
    "fell_since_last",
    "missed_medication_doses",
    "medication_side_effects",
    "wearing_brace",
    "doing_physio",
)

ANSWER_DISPLAY = {"yes": "Yes", "no": "No", "unsure": "Not sure"}


# Asked by EHRs only: the patient's form asks about falls once, in RF-10 (a "yes" here counts as RF-10).
EHR_ONLY_LABELS = {"fell_since_last": "Have you fallen since you last answered these questions?"}


def _label(name: str) -> str:
    field = CheckInForm.base_fields.get(name)
    return str(field.label) if field is not None else EHR_ONLY_LABELS[name]


def _pain_item(name: str, *, required: bool, coded: bool) -> dict:
    item = {
        "extension": [{"url": EXT_MIN_VALUE, "valueInteger": 0}, {"url": EXT_MAX_VALUE, "valueInteger": 10}],
        "linkId": name,
        "text": _label(name),
        "type": "integer",
        "required": required,
    }
    if coded:
        item["code"] = [PAIN_LOINC]
    return item


def _answer_coding(answer: str) -> dict:
    return {"valueCoding": {"system": SYSTEM_ANSWER, "code": answer, "display": ANSWER_DISPLAY[answer]}}


def _questionnaire_items(rules: Rules) -> list[dict]:
    """The red-flag questions of `rules` first, then pain, the second-opinion questions, painkillers, the
    yes/no questions and other symptoms, in the order of the check-in form. None is required: any
    answered red flag is evaluated whatever else is missing (capture rules)."""
    items = []
    for flag in rules.red_flags:
        items.append(
            {
                "linkId": flag.id,
                "code": [{"system": SYSTEM_RULE, "code": flag.id}],
                "text": flag.question,
                "type": "boolean",
                "required": False,
            }
        )
    items += [
        _pain_item("pain_now", required=False, coded=True),
        _pain_item("pain_average_24h", required=False, coded=False),
    ]
    for opinion in rules.second_opinion:
        items.append(
            {
                "linkId": opinion.id,
                "code": [{"system": SYSTEM_RULE, "code": opinion.id}],
                "text": opinion.question,
                "type": "choice",
                "answerOption": [_answer_coding(answer) for answer in SO_ANSWERS],
            }
        )
    items.append(
        {
            "linkId": "painkillers",
            "text": _label("painkillers"),
            "type": "choice",
            "repeats": True,
            "answerOption": [
                {"valueCoding": {"system": SYSTEM_PAINKILLERS, "code": value, "display": str(label)}}
                for value, label in PainkillerUse.choices
            ],
        }
    )
    for name in REPORT_BOOLEANS:
        items.append({"linkId": name, "text": _label(name), "type": "boolean"})
    items.append({"linkId": "other_symptoms", "text": _label("other_symptoms"), "type": "text"})
    return items


def questionnaire_resource(rules: Rules) -> dict:
    """The check-in of spec §4 as one flat Questionnaire, from the rules of protocol `rules.version`."""
    data = {
        "resourceType": "Questionnaire",
        "id": QUESTIONNAIRE_ID,
        "url": QUESTIONNAIRE_URL,
        "version": rules.version,
        "name": "KyphofollowCheckin",
        "title": "Symptom check-in after kyphoplasty or vertebroplasty",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "kyphofollow",
        "description": f"Pain (NRS 0–10), red-flag questions {rules.red_flags[0].id}…{rules.red_flags[-1].id} and "
        "second-opinion questions (spec §1, §4). Answers are evaluated by the same rules as the patient's check-in "
        "form.",
        "item": _questionnaire_items(rules),
    }
    return validated(Questionnaire, data)


class QuestionnaireInstanceView(FHIRView):
    def get(self, request, pk, vid=None):
        if pk != QUESTIONNAIRE_ID:
            raise FHIRError(f"Questionnaire/{pk} is not known; the check-in is {QUESTIONNAIRE_ID}.", status_code=404)
        return Response(questionnaire_resource(get_rules(self.clinic().protocol_version)))

    def clinic(self) -> Clinic:
        clinics = Clinic.objects.filter(id__in=self.clinic_ids())
        slug = self.request.query_params.get("clinic")
        clinic = clinics.filter(slug=slug).first() if slug else clinics.first()
        if clinic is None:
            raise FHIRError("No such clinic for this caller.", status_code=404)
        return clinic


class QuestionnaireTypeView(QuestionnaireInstanceView):
    """`GET Questionnaire?url=<canonical>[|version]` (or `_id`): the check-in when it matches."""

    def get(self, request):
        questionnaire = questionnaire_resource(get_rules(self.clinic().protocol_version))
        params = request.query_params
        urls = values(params, "url")
        ids = values(params, "_id")
        matches = all(url.split("|", 1)[0] == QUESTIONNAIRE_URL for url in urls) and all(
            url.split("|", 1)[1] == questionnaire["version"] for url in urls if "|" in url
        )
        matches = matches and all(value == QUESTIONNAIRE_ID for value in ids)
        return self.bundle([questionnaire] if matches else [])


def _answered_items(report: SymptomReport) -> list[dict]:
    """The report's answers as QuestionnaireResponse items: every red flag answered (yes or no; one a
    partial report left blank is left out), and the other questions where the patient answered them."""
    rules = get_rules(report.protocol_version)
    items = []
    for name in ("pain_now", "pain_average_24h"):
        if getattr(report, name) is not None:
            items.append({"linkId": name, "answer": [{"valueInteger": getattr(report, name)}]})
    for flag in rules.red_flags:
        if flag.id in report.unanswered:
            continue
        items.append(
            {"linkId": flag.id, "text": flag.question, "answer": [{"valueBoolean": flag.id in report.red_flags}]}
        )
    for opinion in rules.second_opinion:
        answer = report.second_opinion.get(opinion.id)
        if answer:
            items.append({"linkId": opinion.id, "text": opinion.question, "answer": [_answer_coding(answer)]})
    if report.painkillers:
        labels = dict(PainkillerUse.choices)
        answers = [
            {"valueCoding": {"system": SYSTEM_PAINKILLERS, "code": code, "display": str(labels.get(code, code))}}
            for code in report.painkillers
        ]
        items.append({"linkId": "painkillers", "answer": answers})
    for name in REPORT_BOOLEANS:
        value = getattr(report, name)
        if value is not None:
            items.append({"linkId": name, "answer": [{"valueBoolean": value}]})
    if report.other_symptoms:
        items.append({"linkId": "other_symptoms", "answer": [{"valueString": report.other_symptoms}]})
    return items


def _finding_extension(finding: dict) -> dict:
    return {
        "url": EXT_FINDING,
        "extension": [
            {"url": "code", "valueCoding": {"system": SYSTEM_RULE, "code": finding["code"]}},
            {"url": "tier", "valueCode": finding["tier"]},
            {"url": "kind", "valueCode": finding["kind"]},
            {"url": "action", "valueString": finding["action"]},
            {"url": "source", "valueString": finding["source"]},
        ],
    }


def _dropped_extension(note: dict) -> dict:
    """An answer the report could not read and did not take (HAZ-41): its linkId and why."""
    return {
        "url": EXT_DROPPED_ANSWER,
        "extension": [
            {"url": "linkId", "valueString": note["field"]},
            {"url": "reason", "valueString": note["reason"]},
        ],
    }


def report_resource(report: SymptomReport) -> dict:
    dropped = [_dropped_extension(note) for note in report.notes if note["code"] == "dropped_answer"]
    data = {
        "resourceType": "QuestionnaireResponse",
        "id": str(report.pk),
        "meta": meta(report),
        "extension": [_finding_extension(finding) for finding in report.findings] + dropped,
        "questionnaire": f"{QUESTIONNAIRE_URL}|{report.protocol_version}",
        "status": "completed",
        "subject": ref("Patient", report.patient_id),
        "partOf": [ref("Procedure", report.procedure_id)],
        "authored": report.reported_at.isoformat(),
        "item": _answered_items(report),
    }
    return validated(QuestionnaireResponse, drop_empty(data))


def findings_of(resource: dict) -> list[dict]:
    """The findings extension of a QuestionnaireResponse as plain dicts (code, tier, kind, action, source)."""
    found = []
    for ext in resource.get("extension", []):
        if ext.get("url") != EXT_FINDING:
            continue
        parts = {part["url"]: part for part in ext.get("extension", [])}
        found.append(
            {
                "code": parts["code"]["valueCoding"]["code"],
                "tier": parts["tier"]["valueCode"],
                "kind": parts["kind"]["valueCode"],
                "action": parts["action"]["valueString"],
                "source": parts["source"]["valueString"],
            }
        )
    return found


def _flat_items(items: list[dict], prefix: str = "QuestionnaireResponse.item") -> list[tuple[str, dict]]:
    flat = []
    for index, item in enumerate(items):
        path = f"{prefix}[{index}]"
        flat.append((path, item))
        flat.extend(_flat_items(item.get("item", []), f"{path}.item"))
        for a_index, answer in enumerate(item.get("answer", [])):
            flat.extend(_flat_items(answer.get("item", []), f"{path}.answer[{a_index}].item"))
    return flat


def _choice(answer: dict, allowed: tuple[str, ...] | list[str], path: str) -> str:
    if "valueCoding" in answer:
        value = answer["valueCoding"].get("code")
    elif "valueString" in answer:
        value = answer["valueString"]
    elif "valueBoolean" in answer and set(allowed) >= {"yes", "no"}:
        value = "yes" if answer["valueBoolean"] else "no"
    else:
        value = None
    if value not in allowed:
        raise FHIRError(f"Answer with valueCoding code one of: {', '.join(allowed)}.", path=path)
    return value


def report_arguments(data: dict, rules: Rules) -> dict:
    """submit_report's keyword arguments from a validated QuestionnaireResponse. An unknown linkId is refused,
    never skipped: a mistyped red-flag id must not go unread. An answer of another question that cannot be
    read is dropped when a red flag is answered yes (HAZ-41), named in `notes`; otherwise it is refused."""
    red_flags = {flag.id for flag in rules.red_flags}
    opinions = {opinion.id for opinion in rules.second_opinion}
    known = {"pain_now", "pain_average_24h", "painkillers", "other_symptoms", *REPORT_BOOLEANS, *red_flags, *opinions}
    arguments: dict[str, Any] = {"red_flags": [], "second_opinion": {}}
    seen: set[str] = set()
    dropped: list[tuple[str, FHIRError]] = []
    for path, item in _flat_items(data.get("item", [])):
        link = item.get("linkId")
        answers = item.get("answer", [])
        if not answers and item.get("item"):
            continue  # a group
        if link not in known:
            raise FHIRError(
                f"Unknown linkId {link!r}; the check-in ({QUESTIONNAIRE_URL}|{rules.version}) has "
                f"{', '.join(sorted(known))}.",
                path=f"{path}.linkId",
            )
        if link in seen:
            raise FHIRError(f"linkId {link!r} is answered twice.", path=f"{path}.linkId")
        seen.add(link)
        try:
            _read_item(arguments, link, answers, path, red_flags=red_flags, opinions=opinions)
        except FHIRError as error:
            if link in red_flags:
                raise
            dropped.append((link, error))
    if dropped and not arguments["red_flags"]:
        raise dropped[0][1]
    arguments.setdefault("pain_now", None)
    questions = {"pain_now", *red_flags, *opinions}
    unread = {link for link, _ in dropped}
    arguments["unanswered"] = sorted((questions - seen) | (questions & unread))  # a partial report says so
    arguments["notes"] = reports.dropped_notes(sorted(unread))
    return arguments


def _read_item(arguments: dict, link: str, answers: list[dict], path: str, *, red_flags: set, opinions: set) -> None:
    if not answers:
        return
    if link == "painkillers":  # repeats: every kind taken
        arguments[link] = [_choice(a, PainkillerUse.values, f"{path}.answer[{n}]") for n, a in enumerate(answers)]
        return
    if len(answers) > 1:
        raise FHIRError(f"{link} takes one answer.", path=f"{path}.answer")
    _take_answer(arguments, link, answers[0], f"{path}.answer[0]", red_flags=red_flags, opinions=opinions)


def _take_answer(arguments: dict, link: str, answer: dict, path: str, *, red_flags: set, opinions: set) -> None:
    """Put the answer to the known question `link` into submit_report's `arguments`, checking its type."""
    if link in {"pain_now", "pain_average_24h"}:
        if not isinstance(answer.get("valueInteger"), int):
            raise FHIRError(f"{link} needs valueInteger 0–10.", path=path)
        arguments[link] = answer["valueInteger"]
    elif link in red_flags or link in REPORT_BOOLEANS:
        if not isinstance(answer.get("valueBoolean"), bool):
            raise FHIRError(f"{link} needs valueBoolean.", path=path)
        if link in red_flags:
            if answer["valueBoolean"]:
                arguments["red_flags"].append(link)
        else:
            arguments[link] = answer["valueBoolean"]
    elif link in opinions:
        arguments["second_opinion"][link] = _choice(answer, SO_ANSWERS, path)
    else:
        if not isinstance(answer.get("valueString"), str):
            raise FHIRError(f"{link} needs valueString.", path=path)
        arguments["other_symptoms"] = answer["valueString"]


REPORT_PATHS = {
    "pain_now": "QuestionnaireResponse.item.where(linkId='pain_now')",
    "pain_average_24h": "QuestionnaireResponse.item.where(linkId='pain_average_24h')",
    "red_flags": "QuestionnaireResponse.item",
    "second_opinion": "QuestionnaireResponse.item",
    "reported_at": "QuestionnaireResponse.authored",
    "patient": "QuestionnaireResponse.subject",
    "procedure": "QuestionnaireResponse.partOf",
    "other_symptoms": "QuestionnaireResponse.item.where(linkId='other_symptoms')",
}


class QuestionnaireResponseTypeView(FHIRView):
    field_paths = REPORT_PATHS

    def search(self, params):
        """patient (or subject), authored (an instant), _id and _lastUpdated."""
        rows = SymptomReport.objects.filter(patient__clinic_id__in=self.clinic_ids())
        patient_id = self.search_patient_id(params)
        if patient_id is not None:
            rows = rows.filter(patient_id=patient_id)
        for value in values(params, "authored"):
            rows = rows.filter(reported_at=instant_of(value.replace(" ", "+"), "authored"))
        return common_filters(rows, params).order_by("reported_at", "id")

    def get(self, request):
        return page(self, self.search(request.query_params), report_resource)

    @idempotent
    def post(self, request):
        data = parse_resource(request, QuestionnaireResponse, "QuestionnaireResponse")
        patient = self.body_patient(data.get("subject"), "QuestionnaireResponse.subject")
        if data.get("status") not in {"completed", "amended"}:
            raise FHIRError(
                "Only a completed response is evaluated (status 'completed').", path="QuestionnaireResponse.status"
            )
        canonical = data.get("questionnaire")
        if canonical and canonical.split("|", 1)[0] != QUESTIONNAIRE_URL:
            raise FHIRError(f"questionnaire must be {QUESTIONNAIRE_URL}.", path="QuestionnaireResponse.questionnaire")
        procedure = self._procedure(data, patient)
        rules = get_rules(procedure.protocol_version or patient.clinic.protocol_version)
        arguments = report_arguments(data, rules)
        authored = instant_of(data.get("authored"), "QuestionnaireResponse.authored")
        with transaction.atomic():
            Patient.objects.select_for_update().filter(pk=patient.pk).first()  # one create per patient at a time
            same = patient.symptom_reports.filter(procedure=procedure, reported_at=authored) if authored else None
            existing = existing_match(request, self.search, same)
            if existing is not None:
                return self.matched(report_resource(existing))
            report = reports.submit_report(
                procedure=procedure, source="fhir", entered_by=self.actor(), reported_at=authored, **arguments
            )
        return self.created(report_resource(report))

    def _procedure(self, data: dict, patient: Patient) -> Procedure:
        parts = [part for part in data.get("partOf", []) if "Procedure/" in (part.get("reference") or "")]
        if parts:
            pk = reference_id(parts[0], "Procedure", "QuestionnaireResponse.partOf")
            procedure = patient.procedures.filter(pk=pk).first()
            if procedure is None:
                raise FHIRError(
                    f"Procedure/{pk} is not a procedure of this patient.", path="QuestionnaireResponse.partOf"
                )
            return procedure
        procedure = patient.procedures.order_by("-performed_on", "-id").first()
        if procedure is None:
            raise FHIRError("The patient has no procedure recorded.", path="QuestionnaireResponse.subject")
        return procedure


class QuestionnaireResponseInstanceView(VersionedInstanceView):
    resource_type = "QuestionnaireResponse"

    def row(self, pk: str) -> SymptomReport:
        report = SymptomReport.objects.filter(patient__clinic_id__in=self.clinic_ids(), pk=int_id(pk)).first()
        if report is None:
            raise FHIRError(f"QuestionnaireResponse/{pk} is not known.", status_code=404)
        return report

    def render(self, row: SymptomReport) -> dict:
        return report_resource(row)
