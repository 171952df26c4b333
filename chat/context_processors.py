from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def site(request: HttpRequest) -> dict:
    from chat.models import SiteSettings

    # Lazy: only pages that show the sign-up link pay for the query.
    return {"allow_signup": SimpleLazyObject(lambda: SiteSettings.load().allow_signup)}


def budget(request: HttpRequest) -> dict:
    """The team budget banner (chat/services/budgets.py): budgets of the user's billing team at
    or past the warning threshold. Lazy: only pages that show the banner pay for the queries."""
    from chat.services import budgets

    return {"budget_banner": SimpleLazyObject(lambda: budgets.banner_lines(request.user))}
