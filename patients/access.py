"""Who may do what, in which clinic: the one access rule.

`clinics_for(actor, action)` answers with the ids of the clinics where `actor` may do `action`. It is
decided per clinic, from the actor's membership role in THAT clinic only, never from a role held
somewhere else; every admin page, the worklist, the KPI and import pages, the REST and FHIR views and
the acknowledge links ask it. Django's global permissions only decide which admin menus a user sees.

- A staff user: the actions of their role in each clinic (ROLE_ACTIONS). A deactivated user: none.
- A superuser: every clinic, every action. Superusers are the operators who run the service
  (`createsuperuser` on the server); they are not clinic staff and get no clinic role.
- An API client (or the principal standing in for it): its clinics, for the actions its scopes give
  (SCOPE_ACTIONS); a revoked client: none. Clients never manage clinics or read the audit trail.
"""

from enum import StrEnum

from django.db.models import QuerySet

from .models import ApiClient, Clinic, ClinicMembership, StaffRole

CACHE_ATTRIBUTE = "_kf_clinic_grants"


class Action(StrEnum):
    VIEW = "view"  # read the clinic's patients, their care and its configuration
    RECORD = "record"  # register and edit patients and procedures, complete checkpoints, enter reports, import
    ACT_ON_ALERTS = "act_on_alerts"  # acknowledge and resolve alerts, mark reviews done, log calls
    OUTBOX = "outbox"  # retry or dismiss a failed delivery
    MANAGE_CLINIC = "manage_clinic"  # clinic settings, memberships, API clients, webhooks, escalation policies
    AUDIT = "audit"  # read the audit trail
    CONFIRM_TIER = "confirm_tier"  # confirm a lower risk tier held by a re-assessment (spec v0.2 §2: a clinician)


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    StaffRole.COORDINATOR: frozenset({Action.VIEW, Action.RECORD, Action.ACT_ON_ALERTS, Action.OUTBOX}),
    StaffRole.CLINICIAN: frozenset({Action.VIEW, Action.RECORD, Action.ACT_ON_ALERTS, Action.CONFIRM_TIER}),
    StaffRole.CLINIC_ADMIN: frozenset(
        {Action.VIEW, Action.RECORD, Action.ACT_ON_ALERTS, Action.OUTBOX, Action.MANAGE_CLINIC}
    ),
    StaffRole.AUDITOR: frozenset({Action.VIEW, Action.AUDIT}),
}
SCOPE_ACTIONS: dict[str, frozenset[Action]] = {
    "read": frozenset({Action.VIEW}),
    "write": frozenset({Action.RECORD, Action.ACT_ON_ALERTS}),
}


def roles_for(action: Action) -> list[str]:
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]


def _api_client(actor) -> ApiClient | None:
    if isinstance(actor, ApiClient):
        return actor
    client = getattr(actor, "client", None)
    return client if isinstance(client, ApiClient) else None


def _grants(actor) -> dict[Action, frozenset[int]]:
    """Every action's clinics for `actor`, read with one query and kept on the actor object (a user
    or client loaded for one request, as Django keeps a user's permissions on it)."""
    client = _api_client(actor)
    holder = client if client is not None else actor
    cached = getattr(holder, CACHE_ATTRIBUTE, None)
    if cached is not None:
        return cached
    grants = {action: set() for action in Action}
    if client is not None:
        if client.is_active:
            links = ApiClient.clinics.through.objects.filter(apiclient_id=client.pk)  # no join: the ids are here
            clinic_ids = list(links.values_list("clinic_id", flat=True))
            for scope in client.scopes:
                for action in SCOPE_ACTIONS.get(scope, ()):
                    grants[action].update(clinic_ids)
    elif actor is not None and getattr(actor, "is_authenticated", False) and getattr(actor, "is_active", False):
        if actor.is_superuser:
            every = list(Clinic.objects.values_list("id", flat=True))
            grants = {action: set(every) for action in Action}
        else:
            for clinic_id, role in ClinicMembership.objects.filter(user=actor).values_list("clinic_id", "role"):
                for action in ROLE_ACTIONS.get(role, ()):
                    grants[action].add(clinic_id)
    frozen = {action: frozenset(ids) for action, ids in grants.items()}
    if holder is not None:
        setattr(holder, CACHE_ATTRIBUTE, frozen)
    return frozen


def clinics_for(actor, action: Action) -> frozenset[int]:
    """The ids of the clinics where `actor` (a staff user, an API client or its principal) may do
    `action`."""
    return _grants(actor)[Action(action)]


def forget(actor) -> None:
    """Drop what `_grants` kept on `actor` (after its memberships, scopes or clinics changed)."""
    client = _api_client(actor)
    holder = client if client is not None else actor
    if holder is not None and hasattr(holder, CACHE_ATTRIBUTE):
        delattr(holder, CACHE_ATTRIBUTE)


def can(actor, action: Action, clinic_id: int | None) -> bool:
    """May `actor` do `action` in the clinic `clinic_id`?"""
    return clinic_id is not None and clinic_id in clinics_for(actor, action)


def scoped(queryset: QuerySet, actor, action: Action, clinic_path: str = "clinic") -> QuerySet:
    """`queryset` narrowed to rows whose clinic (reached by `clinic_path`; "" for clinics) allows
    `action` to `actor`."""
    lookup = f"{clinic_path}__in" if clinic_path else "pk__in"
    return queryset.filter(**{lookup: sorted(clinics_for(actor, action))})


def clinic_id_of(obj, clinic_path: str) -> int | None:
    """The clinic id of `obj`, following `clinic_path` ("procedure__patient__clinic"; "" for a clinic)."""
    if not clinic_path:
        return obj.pk
    *hops, last = clinic_path.split("__")
    for hop in hops:
        obj = getattr(obj, hop, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


def manageable_api_clients(actor) -> QuerySet:
    """API clients every one of whose clinics `actor` manages (a client with no clinic: operators only)."""
    return api_clients_within(actor, Action.MANAGE_CLINIC)


def api_clients_within(actor, *actions: Action) -> QuerySet:
    """API clients every one of whose clinics allows `actor` one of `actions` (a client with no
    clinic: operators only)."""
    clients = ApiClient.objects.all()
    if getattr(actor, "is_superuser", False) and getattr(actor, "is_active", False):
        return clients
    allowed = frozenset().union(*(clinics_for(actor, action) for action in actions))
    return clients.filter(clinics__in=allowed).exclude(clinics__in=Clinic.objects.exclude(id__in=allowed)).distinct()


def staff_in(clinic_ids, *, role: str) -> QuerySet:
    """Active users holding `role` in one of `clinic_ids` (e.g. the clinicians a patient may be given)."""
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(is_active=True, clinic_memberships__role=role, clinic_memberships__clinic_id__in=clinic_ids)
        .distinct()
    )
