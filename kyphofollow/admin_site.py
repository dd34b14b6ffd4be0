"""The admin site: its home is the worklist; staff sign in with a password and a TOTP code.

A staff member without a confirmed authenticator is let in with the password only as far as the
page that enrols one (`admin:otp-setup`), and enrolling also needs the single-use link e-mailed to
them (kyphofollow/enrolment.py); every other admin page needs a verified session.
"""

from django.conf import settings
from django.contrib.admin import AdminSite
from django.shortcuts import redirect
from django.urls import path, reverse
from django_otp import user_has_device
from django_otp.admin import OTPAdminAuthenticationForm

from . import enrolment


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Password, then the TOTP code of the staff member's authenticator (when 2FA is required and
    one is enrolled; a first sign-in goes on to enrol one)."""

    def clean_otp(self, user):
        if user is None or not settings.STAFF_REQUIRE_2FA or not user_has_device(user, confirmed=True):
            return
        super().clean_otp(user)


class KyphofollowAdminSite(AdminSite):
    site_header = "kyphofollow"
    site_title = "kyphofollow"
    index_title = "Follow-up after kyphoplasty and vertebroplasty"
    login_form = StaffLoginForm

    @property
    def login_template(self):
        """The code field only where a code is asked for: with 2FA off, Django's plain sign-in."""
        return "otp/admin111/login.html" if settings.STAFF_REQUIRE_2FA else "admin/staff_login.html"

    def has_permission(self, request):
        verified = not settings.STAFF_REQUIRE_2FA or request.user.is_verified()
        return super().has_permission(request) and verified

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def guarded(request, *args, **kwargs):
            user = request.user
            signing_out = request.path == reverse("admin:logout", current_app=self.name)
            if settings.STAFF_REQUIRE_2FA and user.is_active and user.is_staff and not user.is_verified():
                if not signing_out:
                    return redirect("admin:otp-setup")
            return inner(request, *args, **kwargs)

        return guarded

    def index(self, request, extra_context=None):
        from alerts.dashboard import worklist

        return worklist(request, site=self)

    def get_urls(self):
        from alerts import dashboard, patient_page

        return [
            path("2fa/setup/", enrolment.setup, {"site": self}, name="otp-setup"),
            path("2fa/enrol/<str:token>/", enrolment.redeem, {"site": self}, name="otp-enrol"),
            path("tables/", self.admin_view(super().index), name="tables"),
            path("worklist/<str:kind>/<int:pk>/<str:action>/", self.admin_view(dashboard.act), name="worklist-act"),
            path("worklist/assign/<str:kind>/<int:pk>/", self.admin_view(dashboard.assign), name="worklist-assign"),
            path("worklist/bulk/<str:kind>/", self.admin_view(dashboard.bulk), name="worklist-bulk"),
            path(
                "patients/patient/<int:pk>/overview/",
                self.admin_view(patient_page.patient_overview),
                name="patient-overview",
            ),
        ] + super().get_urls()
