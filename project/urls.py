from django.contrib import admin
from django.contrib.auth.views import PasswordChangeView
from django.urls import include, path

from chat import health, staff_views, views
from chat.auth_views import ThrottledLoginView
from chat.services.session_binding import keeps_this_session

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("admin/usage/", staff_views.dashboard, name="staff-usage"),
    path("admin/usage/export.csv", staff_views.usage_csv, name="staff-usage-csv"),
    # Password changes end the user's other sessions' sockets and keep this session's.
    path(
        "admin/password_change/",
        keeps_this_session(admin.site.admin_view(admin.site.password_change)),
    ),
    path(
        "accounts/password_change/",
        keeps_this_session(PasswordChangeView.as_view()),
        name="password_change",
    ),
    path("admin/", admin.site.urls),
    path("setup/", views.setup, name="setup"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("usage/", staff_views.my_usage, name="my-usage"),
    path("", include("chat.urls")),
]
