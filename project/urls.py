from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import PasswordChangeView
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog, set_language

import chat.request_ids  # noqa: F401 (registers the <id:…> converter)
from chat import health, metrics
from chat.api import pages as api_pages
from chat.services.session_binding import keeps_this_session
from chat.signin import views as signin_views
from chat.views import account_data, accounts, feedback, governance, lockouts, staff
from chat.views.login import ThrottledLoginView

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", include("chat.api.urls")),  # the OpenAI-compatible API (Bearer keys)
    # Browsers ask for /favicon.ico on pages without an icon link (the admin's, the image page).
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    ),
    # Languages (README "Languages"): the user menu's switch posts here (it sets the language
    # cookie); the JavaScript catalog gives static/js/*.js gettext() in the page's language.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path(
        "jsi18n/",
        login_not_required(JavaScriptCatalog.as_view(packages=["chat"])),
        name="javascript-catalog",
    ),
    path("admin/usage/", staff.dashboard, name="staff-usage"),
    path("admin/usage/export.csv", staff.usage_csv, name="staff-usage-csv"),
    path("admin/usage/feedback.csv", feedback.feedback_csv, name="staff-feedback-csv"),
    path("admin/usage/teams/", governance.team_budgets, name="staff-team-budgets"),
    path("admin/audit-log/", governance.audit_log, name="staff-audit-log"),
    path("admin/lockouts/", lockouts.lockouts, name="admin-lockouts"),
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
    path("setup/", accounts.setup, name="setup"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", signin_views.SignOutView.as_view(), name="logout"),
    path("accounts/oidc/login/", signin_views.oidc_login, name="oidc-login"),
    path("accounts/oidc/callback/", signin_views.oidc_callback, name="oidc-callback"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("usage/", staff.my_usage, name="my-usage"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("account/", account_data.account_page, name="account"),
    path("account/data.zip", account_data.download_my_data, name="download-my-data"),
    path("account/delete/", account_data.delete_my_account, name="delete-my-account"),
    path(
        "announcements/<id:announcement_id>/dismiss/",
        account_data.dismiss_announcement,
        name="dismiss-announcement",
    ),
    path("account/api-keys/", api_pages.api_keys, name="api-keys"),
    path("account/api-keys/<int:key_id>/revoke/", api_pages.revoke_api_key, name="api-key-revoke"),
    path("", include("chat.urls")),
]
