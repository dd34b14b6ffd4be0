"""FHIR Patient: read, search by MRN, create (`register_patient`) and update (`update_patient`)."""

from django.conf import settings
from django.db import transaction
from fhir.resources.R4B.patient import Patient as FhirPatient
from rest_framework.response import Response

from patients import services
from patients.models import Clinic, Patient, PatientStatus, Sex

from ..idempotency import idempotent
from .base import (
    FHIRError,
    FHIRView,
    codes_in,
    date_of,
    drop_empty,
    find_extension,
    int_id,
    meta,
    parse_resource,
    validated,
)
from .codes import BASE, BCP47, EXT_EMAIL_CONSENT, EXT_TIMEZONE, V2_0203
from .search import common_filters, existing_match, page, search_filters, values
from .versions import VersionedInstanceView, check_if_match


def mrn_system(clinic: Clinic) -> str:
    return f"{BASE}/mrn/{clinic.slug}"


def patient_resource(patient: Patient) -> dict:
    clinic = patient.clinic
    telecom = []
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if patient.phone:
        telecom.append({"system": "phone", "value": str(patient.phone)})
    data = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": meta(patient),
        "extension": [
            {"url": EXT_TIMEZONE, "valueCode": patient.time_zone},
            {"url": EXT_EMAIL_CONSENT, "valueBoolean": patient.email_consent},
        ],
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
                "system": patient.mrn_system or mrn_system(clinic),
                "value": patient.mrn,
            }
        ],
        "active": patient.status == PatientStatus.ACTIVE,
        "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
        "telecom": telecom,
        "gender": patient.sex,
        "birthDate": patient.birth_date.isoformat(),
        "deceasedBoolean": True if patient.status == PatientStatus.DECEASED else None,
        "communication": [{"language": {"coding": [{"system": BCP47, "code": patient.language}]}, "preferred": True}],
        "managingOrganization": {"reference": f"Organization/{clinic.slug}", "display": clinic.name},
    }
    return validated(FhirPatient, drop_empty(data))


PATIENT_PATHS = {
    "mrn": "Patient.identifier",
    "mrn_system": "Patient.identifier",
    "given_name": "Patient.name.given",
    "family_name": "Patient.name.family",
    "birth_date": "Patient.birthDate",
    "sex": "Patient.gender",
    "email": "Patient.telecom",
    "phone": "Patient.telecom",
    "language": "Patient.communication.language",
    "time_zone": f"Patient.extension('{EXT_TIMEZONE}')",
    "email_consent": f"Patient.extension('{EXT_EMAIL_CONSENT}')",
    "status": "Patient.active",
    "clinic": "Patient.managingOrganization",
}


def _mrn(data: dict) -> tuple[str, str]:
    """The MRN and the system the EHR sent it under ("" for ours, which is derived from the clinic)."""
    identifiers = data.get("identifier", [])
    marked = [i for i in identifiers if "MR" in codes_in(i.get("type"), V2_0203) or "MR" in codes_in(i.get("type"))]
    ours = [i for i in identifiers if str(i.get("system", "")).startswith(f"{BASE}/mrn/")]
    chosen = marked or ours or (identifiers if len(identifiers) == 1 else [])
    if not chosen:
        message = "Give the MRN as an identifier with a system and a value" + (
            " and type MR (v2-0203), to tell it from the other identifiers." if identifiers else "."
        )
        raise FHIRError(message, code="required", path="Patient.identifier")
    identifier = chosen[0]
    if not identifier.get("system") or not identifier.get("value"):
        raise FHIRError("The MRN identifier needs both a system and a value.", path="Patient.identifier")
    system = identifier["system"]
    return identifier["value"], "" if system.startswith(f"{BASE}/mrn/") else system


def _language(data: dict) -> str | None:
    entries = data.get("communication", [])
    if not entries:
        return None
    entry = next((c for c in entries if c.get("preferred")), entries[0])
    codes = codes_in(entry.get("language"), BCP47) or codes_in(entry.get("language"))
    if not codes:
        raise FHIRError("communication.language needs a BCP-47 code.", path="Patient.communication.language")
    supported = {code for code, _ in settings.LANGUAGES}
    code = codes[0].lower()
    for candidate in (code, code.split("-")[0]):
        if candidate in supported:
            return candidate
    raise FHIRError(
        f"Language {codes[0]!r} is not supported; supported: {', '.join(sorted(supported))}.",
        path="Patient.communication.language",
    )


def patient_fields(data: dict, *, creating: bool) -> dict:
    """Model fields from a validated Patient. Replaced on update: identifier, name, birthDate, gender,
    telecom and communication. Kept on update when absent: time zone, e-mail consent and status."""
    names = data.get("name", [])
    if not names:
        raise FHIRError("A name (family and given) is required.", code="required", path="Patient.name")
    name = next((n for n in names if n.get("use") == "official"), names[0])
    given = " ".join(name.get("given", [])).strip()
    if not name.get("family") or not given:
        raise FHIRError("The name needs a family name and a given name.", code="required", path="Patient.name")
    gender = data.get("gender", Sex.UNKNOWN)
    if gender not in Sex.values:
        raise FHIRError(f"gender must be one of {', '.join(Sex.values)}.", path="Patient.gender")
    telecom = data.get("telecom", [])
    email = next((t.get("value", "") for t in telecom if t.get("system") == "email"), "")
    phone = next((t.get("value", "") for t in telecom if t.get("system") in {"phone", "sms"}), "")
    mrn, system = _mrn(data)
    fields = {
        "mrn": mrn,
        "mrn_system": system,
        "given_name": given,
        "family_name": name["family"],
        "birth_date": date_of(data.get("birthDate"), "Patient.birthDate"),
        "sex": gender,
        "email": email,
        "phone": phone,
        "language": _language(data) or "en",
    }
    zone = find_extension(data, EXT_TIMEZONE)
    if zone is not None:
        fields["time_zone"] = zone.get("valueCode") or ""
    consent = find_extension(data, EXT_EMAIL_CONSENT)
    if consent is not None:
        if not isinstance(consent.get("valueBoolean"), bool):
            raise FHIRError("The e-mail consent extension needs valueBoolean.", path=PATIENT_PATHS["email_consent"])
        fields["email_consent"] = consent["valueBoolean"]
    elif creating:
        fields["email_consent"] = False
    if data.get("deceasedBoolean") or data.get("deceasedDateTime"):
        fields["status"] = PatientStatus.DECEASED
    elif data.get("active") is False:
        fields["status"] = PatientStatus.WITHDRAWN
    elif data.get("active") is True or creating:
        fields["status"] = PatientStatus.ACTIVE
    return fields


class PatientTypeView(FHIRView):
    field_paths = PATIENT_PATHS

    def search(self, params):
        if not search_filters(params) & {"identifier", "_id", "_lastUpdated"}:
            raise FHIRError(
                "Search patients by identifier (the MRN), e.g. ?identifier=MRN123, or by _id or _lastUpdated.",
                code="required",
            )
        rows = common_filters(self.patients(), params)
        for identifier in values(params, "identifier"):
            rows = rows.filter(mrn=identifier.split("|", 1)[-1])
        return rows.order_by("id")

    def get(self, request):
        return page(self, self.search(request.query_params), patient_resource)

    @idempotent
    def post(self, request):
        data = parse_resource(request, FhirPatient, "Patient")
        fields = patient_fields(data, creating=True)
        clinic = self._clinic(data)
        fields.setdefault("time_zone", clinic.time_zone)
        with transaction.atomic():
            Clinic.objects.select_for_update().filter(pk=clinic.pk).first()  # one create per clinic at a time
            existing = existing_match(request, self.search, lambda: self._same_patients(clinic, fields))
            if existing is not None:
                return self.matched(patient_resource(existing))
            patient = services.register_patient(clinic=clinic, **fields)
        return self.created(patient_resource(patient))

    def _same_patients(self, clinic: Clinic, fields: dict):
        """The clinic's patient with this MRN and the same fields: a repeated create."""
        same = self.patients().filter(clinic=clinic, mrn=fields["mrn"])
        return same.filter(pk__in=[p.pk for p in same if all(getattr(p, k) == v for k, v in fields.items())])

    def _clinic(self, data: dict) -> Clinic:
        clinics = Clinic.objects.filter(id__in=self.clinic_ids())
        organization = data.get("managingOrganization")
        if organization:
            slug = (organization.get("reference") or "").rsplit("Organization/", 1)[-1]
            clinic = (
                clinics.filter(slug=slug).first() if "Organization/" in (organization.get("reference") or "") else None
            )
            if clinic is None:
                raise FHIRError(
                    f"managingOrganization must be Organization/<clinic slug> of one of this client's clinics, "
                    f"got {organization.get('reference')!r}.",
                    path="Patient.managingOrganization",
                )
            return clinic
        found = list(clinics[:2])
        if len(found) != 1:
            raise FHIRError(
                "This client serves more than one clinic: give managingOrganization Organization/<clinic slug>.",
                code="required",
                path="Patient.managingOrganization",
            )
        return found[0]


class PatientInstanceView(VersionedInstanceView):
    field_paths = PATIENT_PATHS
    resource_type = "Patient"

    def row(self, pk: str) -> Patient:
        patient = self.patients().filter(pk=int_id(pk)).first() if int_id(pk) else None
        if patient is None:
            raise FHIRError(f"Patient/{pk} is not known.", status_code=404)
        return patient

    def render(self, row: Patient) -> dict:
        return patient_resource(row)

    def put(self, request, pk, vid=None):
        if vid is not None:
            raise FHIRError("Update the resource, not one of its versions.", status_code=405)
        patient = self.row(pk)
        data = parse_resource(request, FhirPatient, "Patient")
        if data.get("id") != pk:
            raise FHIRError(f"The resource id must equal the id in the URL ({pk}).", path="Patient.id")
        organization = (data.get("managingOrganization") or {}).get("reference")
        if organization and organization.rsplit("/", 1)[-1] != patient.clinic.slug:
            raise FHIRError("A patient cannot move to another clinic.", path="Patient.managingOrganization")
        fields = patient_fields(data, creating=False)
        with transaction.atomic():
            patient = self.patients().select_for_update(of=("self",)).get(pk=patient.pk)
            check_if_match(request, patient)
            patient = services.update_patient(patient=patient, reason="changed over FHIR", **fields)
        response = Response(patient_resource(patient))
        response["Location"] = f"{self.base_url()}Patient/{patient.pk}/_history/{response.data['meta']['versionId']}"
        return response
