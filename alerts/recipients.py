"""Who an escalation step pages, and the clinic-wide fallback when a chain has no one left (HAZ-44).

A step names a target (protocol vocabulary NOTIFY_TARGETS); its recipients are the clinic's active
members with an e-mail address who hold it, decided from each member's role in THIS clinic only.
When the step being paged and every later one are empty, the alert goes to everyone who may act
on the clinic's alerts (`patients.access.roles_for(ACT_ON_ALERTS)`): the safer choice, since a page
too many costs a minute and a page to no one can cost the patient. [DESIGN]
"""

from django.db.models import QuerySet

from patients import access
from patients.models import Clinic, ClinicMembership, StaffRole
from patients.protocol import get_protocol

from .models import EscalationPolicy, Tier

FALLBACK = "clinic"  # the target recorded when the clinic-wide fallback was paged


def policy_for(clinic: Clinic, tier: str, version: str) -> list[dict]:
    """The clinic's own policy for `tier`, else the default of protocol `version` ([[escalation]])."""
    policy = EscalationPolicy.objects.filter(clinic=clinic, tier=tier).first()
    return policy.steps if policy else get_protocol(version).escalation_policy(tier)


def _members_of(clinics) -> QuerySet:
    return ClinicMembership.objects.filter(clinic__in=clinics, user__is_active=True).exclude(user__email="")


def _members(clinic: Clinic) -> QuerySet:
    return _members_of([clinic])


def _users(memberships: QuerySet) -> list:
    return [membership.user for membership in memberships.select_related("user").order_by("user_id")]


def step_recipients(clinic: Clinic, target: str, *, patient=None) -> list:
    """The users step `target` pages for `patient` (None: any patient of the clinic)."""
    members = _members(clinic)
    if target == "responsible_clinician":
        clinician = patient.responsible_clinician if patient is not None else None
        if clinician and clinician.is_active and clinician.email:
            return [clinician]
        return _users(members.filter(role=StaffRole.CLINICIAN))
    if target == "coordinators":
        return _users(members.filter(role=StaffRole.COORDINATOR))
    if target == FALLBACK:
        return fallback_recipients(clinic)
    return _users(members.filter(on_call=True))


def fallback_recipients(clinic: Clinic) -> list:
    """Everyone in `clinic` whose role there may act on alerts, active and with an e-mail address."""
    return _users(_members(clinic).filter(role__in=access.roles_for(access.Action.ACT_ON_ALERTS)))


def _targets_with_members(memberships) -> set[str]:
    """The step targets (and FALLBACK) that someone among `memberships` (role, on_call) would receive."""
    roles = {role for role, _ in memberships}
    targets = {"on_call"} if any(on_call for _, on_call in memberships) else set()
    if StaffRole.CLINICIAN in roles:
        targets.add("responsible_clinician")
    if StaffRole.COORDINATOR in roles:
        targets.add("coordinators")
    if roles & set(access.roles_for(access.Action.ACT_ON_ALERTS)):
        targets.add(FALLBACK)
    return targets


def chain_gaps(clinics) -> dict[int, list[str]]:
    """Sentences for a clinic admin, by clinic id: each step of each tier's chain (the clinic's own
    policy, else the protocol's default) that has no one to page, and whether the fallback has
    anyone. Two queries whatever the number of clinics."""
    clinics = list(clinics)
    members: dict[int, list] = {clinic.pk: [] for clinic in clinics}
    for clinic_id, role, on_call in _members_of(clinics).values_list("clinic_id", "role", "on_call"):
        members[clinic_id].append((role, on_call))
    own = {(p.clinic_id, p.tier): p.steps for p in EscalationPolicy.objects.filter(clinic__in=clinics)}
    gaps: dict[int, list[str]] = {}
    for clinic in clinics:
        reachable, found = _targets_with_members(members[clinic.pk]), []
        for tier, label in Tier.choices:
            steps = own.get((clinic.pk, tier)) or get_protocol(clinic.protocol_version).escalation_policy(tier)
            found += [
                f"{label} alerts, step {number} ({step['notify'].replace('_', ' ')}): no active member with an "
                "e-mail address; its pages pass on to the next step, or to the whole clinic."
                for number, step in enumerate(steps, start=1)
                if step["notify"] not in reachable
            ]
        if found and FALLBACK not in reachable:
            found.append("No one in this clinic who may act on alerts has an e-mail address: nobody can be paged.")
        if found:
            gaps[clinic.pk] = found
    return gaps


def managed_chain_gaps(actor) -> list[tuple[Clinic, list[str]]]:
    """`chain_gaps` of each clinic `actor` manages (by their role in that clinic), those with any."""
    clinics = list(
        Clinic.objects.filter(id__in=access.clinics_for(actor, access.Action.MANAGE_CLINIC)).order_by("name")
    )
    gaps = chain_gaps(clinics)
    return [(clinic, gaps[clinic.pk]) for clinic in clinics if clinic.pk in gaps]
