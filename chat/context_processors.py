from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def site(request: HttpRequest) -> dict:
    from chat.models import SiteSettings

    # Lazy: only pages that show the sign-up link pay for the query.
    return {"allow_signup": SimpleLazyObject(lambda: SiteSettings.load().allow_signup)}


def announcements(request: HttpRequest) -> dict:
    """The banners for the signed-in user (templates/base.html shows them on every page)."""
    from chat.services.announcements import active_for

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"site_announcements": SimpleLazyObject(lambda: list(active_for(user)))}


def budget(request: HttpRequest) -> dict:
    """The team budget banner (chat/services/budgets.py): budgets of the user's billing team at
    or past the warning threshold. Lazy: only pages that show the banner pay for the queries."""
    from chat.services import budgets

    return {"budget_banner": SimpleLazyObject(lambda: budgets.banner_lines(request.user))}
