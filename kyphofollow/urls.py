from django.contrib import admin
from django.urls import path

from alerts import views as alert_views

from .health import health

admin.site.site_header = "kyphofollow"
admin.site.site_title = "kyphofollow"
admin.site.index_title = "Follow-up after kyphoplasty and vertebroplasty"

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("c/<str:token>/", alert_views.checkin_start, name="checkin-start"),
    path("checkin/", alert_views.checkin_form, name="checkin-form"),
    path("checkin/done/", alert_views.checkin_done, name="checkin-done"),
    path("ack/<str:token>/", alert_views.alert_acknowledge, name="alert-acknowledge"),
]
