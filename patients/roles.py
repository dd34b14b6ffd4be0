"""Staff roles as Django groups. A user's groups follow their clinic memberships' roles; which
clinics they see follows the memberships themselves."""

from .models import StaffRole

VIEW_ALL = [
    "patients.view_clinic",
    "patients.view_patient",
    "patients.view_procedure",
    "patients.view_treatedlevel",
    "patients.view_checkpoint",
    "patients.view_checkpointevent",
    "patients.view_riskassessment",
    "patients.view_tierdropreview",
    "patients.view_dxaresult",
    "alerts.view_checkin",
    "alerts.view_symptomreport",
    "alerts.view_alert",
    "alerts.view_alertevent",
    "alerts.view_reviewtask",
    "alerts.view_delivery",
    "alerts.view_digestrun",
    "alerts.view_escalationpolicy",
]
AUDIT = [
    "patients.view_historicalpatient",
    "patients.view_historicalprocedure",
    "patients.view_historicaltreatedlevel",
    "patients.view_historicalclinicmembership",
    "patients.view_historicalclinic",
    "patients.view_historicalapiclient",
    "alerts.view_historicalescalationpolicy",
    "alerts.view_historicalwebhookendpoint",
]
CARE = [
    "patients.add_patient",
    "patients.change_patient",
    "patients.add_procedure",
    "patients.change_procedure",
    "patients.add_treatedlevel",
    "patients.change_treatedlevel",
    "patients.delete_treatedlevel",
    "patients.change_checkpoint",
    "alerts.add_symptomreport",
    "alerts.change_alert",
    "alerts.change_checkin",
    "alerts.change_reviewtask",
]
ROLE_PERMISSIONS = {
    StaffRole.COORDINATOR: VIEW_ALL + CARE + ["alerts.change_delivery"],
    StaffRole.CLINICIAN: VIEW_ALL + CARE,
    StaffRole.CLINIC_ADMIN: VIEW_ALL
    + CARE
    + [
        "alerts.change_delivery",
        "patients.change_clinic",
        "patients.view_clinicmembership",
        "patients.add_clinicmembership",
        "patients.change_clinicmembership",
        "patients.delete_clinicmembership",
        "alerts.add_escalationpolicy",
        "alerts.change_escalationpolicy",
        "alerts.view_webhookendpoint",
        "alerts.add_webhookendpoint",
        "alerts.change_webhookendpoint",
        "patients.view_apiclient",
        "patients.change_apiclient",
        "patients.view_historicalapiclient",
    ],
    StaffRole.AUDITOR: VIEW_ALL + AUDIT,
}
GROUP_NAMES = {role: label for role, label in StaffRole.choices}


def ensure_role_groups(group_model, permission_model) -> None:
    """Create or refresh the role groups with their permissions (models passed in, so that the data
    migration can use its historical ones)."""
    for role, name in GROUP_NAMES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        labels = [entry.split(".") for entry in ROLE_PERMISSIONS[role]]
        # A model a later migration creates has no permissions yet when an earlier one runs this: its
        # own migration runs it again (a codename wrong for an existing model still fails loudly).
        known = set(permission_model.objects.values_list("content_type__app_label", "content_type__model"))
        group.permissions.set(
            [
                permission_model.objects.get(content_type__app_label=app, codename=code)
                for app, code in labels
                if (app, code.split("_", 1)[1]) in known
            ]
        )


def sync_staff_groups(user) -> None:
    """Put `user` in exactly the role groups of their clinic memberships."""
    from django.contrib.auth.models import Group, Permission

    if Group.objects.filter(name__in=GROUP_NAMES.values()).count() < len(GROUP_NAMES):
        ensure_role_groups(Group, Permission)  # e.g. after a database flush emptied them
    roles = set(user.clinic_memberships.values_list("role", flat=True))
    wanted = Group.objects.filter(name__in=[GROUP_NAMES[role] for role in roles])
    role_groups = Group.objects.filter(name__in=GROUP_NAMES.values())
    user.groups.remove(*role_groups.exclude(pk__in=wanted))
    user.groups.add(*wanted)
