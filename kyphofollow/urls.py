from django.contrib import admin
from django.urls import path

from .health import health

admin.site.site_header = "kyphofollow"
admin.site.site_title = "kyphofollow"
admin.site.index_title = "Follow-up after kyphoplasty and vertebroplasty"

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
]
