from django.contrib.admin.apps import AdminConfig


class KyphofollowAdminConfig(AdminConfig):
    """The admin, with the coordinator's worklist as its home page."""

    default_site = "kyphofollow.admin_site.KyphofollowAdminSite"
