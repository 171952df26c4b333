from django.contrib import admin
from django.urls import include, path

from chat import health, lockout_views, staff_views, views
from chat.auth_views import ThrottledLoginView
from chat.signin import views as signin_views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("admin/usage/", staff_views.dashboard, name="staff-usage"),
    path("admin/usage/export.csv", staff_views.usage_csv, name="staff-usage-csv"),
    path("admin/lockouts/", lockout_views.lockouts, name="admin-lockouts"),
    path("admin/", admin.site.urls),
    path("setup/", views.setup, name="setup"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", signin_views.SignOutView.as_view(), name="logout"),
    path("accounts/oidc/login/", signin_views.oidc_login, name="oidc-login"),
    path("accounts/oidc/callback/", signin_views.oidc_callback, name="oidc-callback"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("usage/", staff_views.my_usage, name="my-usage"),
    path("", include("chat.urls")),
]
