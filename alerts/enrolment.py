"""The e-mail that lets a staff member enrol their authenticator.

The password alone never enrols one: whoever signs in with it, before an authenticator is confirmed,
only gets this mail sent to the account's own address. Its link (made when the mail is built, stored
as a digest, single use, valid for STAFF_ENROLMENT_LINK_MINUTES) is the second proof.
"""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from patients.models import ClinicMembership

from .messages import enrolment_link_lifetime
from .models import Channel, Delivery, DeliveryKind
from .outbox import enqueue_deliveries


def request_enrolment_mail(*, user: AbstractBaseUser, now: datetime) -> bool:
    """Write (once per link lifetime, however often it is asked) the outbox row of `user`'s enrolment
    mail; False when the account has no e-mail address to send it to.

    The cause is the user and the current lifetime window, so repeated sign-ins or several browsers
    at once write one mail per window: a password-holder cannot flood the owner's mailbox.
    """
    if not user.email:
        return False
    window = int(now.timestamp()) // int(enrolment_link_lifetime().total_seconds())
    membership = ClinicMembership.objects.filter(user=user).order_by("pk").first()
    with transaction.atomic():
        delivery, created = Delivery.objects.get_or_create(
            cause=f"enrolment:{user.pk}:{window}",
            channel=Channel.EMAIL,
            recipient=user.email,
            defaults={
                "kind": DeliveryKind.ENROLMENT,
                "clinic_id": membership.clinic_id if membership else None,
                "recipient_user": user,
                "next_attempt_at": now,
            },
        )
        if created:
            enqueue_deliveries([delivery.pk])
    return True
