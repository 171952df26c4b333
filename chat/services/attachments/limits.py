"""The limits on uploads: per file (``MAX_UPLOAD_BYTES``), per message
(``MAX_FILES_PER_MESSAGE``) and per user a day (``UPLOAD_BYTES_PER_DAY``, or the user's own
quota set by staff: ``UserQuota.upload_bytes_per_day``; 0 means no uploads). Each refusal says
which limit and how far."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat.models import Attachment, UserQuota
from chat.services.attachments.errors import UploadRefused


def check_file_size(size: int) -> None:
    if size <= 0:
        raise UploadRefused(_("This file is empty."))
    if size > settings.MAX_UPLOAD_BYTES:
        raise UploadRefused(
            _("This file is too large (%(size)s); files up to %(limit)s can be attached.")
            % {"size": filesizeformat(size), "limit": filesizeformat(settings.MAX_UPLOAD_BYTES)}
        )


def check_files_per_message(count: int) -> None:
    """``count``: how many files the message would carry."""
    limit = settings.MAX_FILES_PER_MESSAGE
    if count > limit:
        raise UploadRefused(
            ngettext(
                "Too many files: a message can carry %(limit)s file.",
                "Too many files: a message can carry %(limit)s files.",
                limit,
            )
            % {"limit": limit}
        )


def daily_allowance(user) -> int:
    """Bytes ``user`` may upload a day: their quota's, else the server's."""
    own = UserQuota.objects.filter(user=user).values_list("upload_bytes_per_day", flat=True)
    value = next(iter(own), None)
    return settings.UPLOAD_BYTES_PER_DAY if value is None else value


def start_of_today() -> dt.datetime:
    today = timezone.localdate()
    return dt.datetime.combine(today, dt.time.min, tzinfo=timezone.get_current_timezone())


def uploaded_today(user) -> int:
    return (
        Attachment.objects.filter(
            owner=user, from_model=False, created_at__gte=start_of_today()
        ).aggregate(total=Sum("size"))["total"]
        or 0
    )


def check_daily_quota(user, size: int) -> None:
    allowance = daily_allowance(user)
    used = uploaded_today(user)
    if used + size > allowance:
        if allowance == 0:
            raise UploadRefused(_("Your account may not upload files. Ask an administrator."))
        raise UploadRefused(
            _(
                "Your daily upload quota is used up: %(used)s of %(allowance)s today. "
                "Files can be attached again tomorrow."
            )
            % {"used": filesizeformat(used), "allowance": filesizeformat(allowance)}
        )
