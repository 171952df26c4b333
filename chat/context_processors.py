from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def site(request: HttpRequest) -> dict:
    from chat.models import SiteSettings

    # Lazy: only pages that show the sign-up link pay for the query.
    return {"allow_signup": SimpleLazyObject(lambda: SiteSettings.load().allow_signup)}
