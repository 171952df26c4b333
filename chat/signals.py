"""Whoever changes who may see a thread (a share, a team's members, a deleted thread), or whether
a login session may still act (logout, password, deactivation), from a view, the admin or the
shell, the open sockets concerned hear of it; a deleted thread's running answers are stopped on
whichever worker runs them."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from chat import image_policy
from chat.models import Attachment, SiteSettings, Team, Thread, ThreadShare, UsageRecord
from chat.services import budgets, session_binding
from chat.services.sharing import announce_after_commit, threads_shared_with_teams


@receiver([post_save, post_delete], sender=ThreadShare)
def share_changed(sender, instance: ThreadShare, **kwargs) -> None:
    announce_after_commit([instance.thread_id])


@receiver(post_delete, sender=Thread)
def thread_deleted(sender, instance: Thread, **kwargs) -> None:
    announce_after_commit([instance.pk])


@receiver(post_delete, sender=Attachment)
def attachment_deleted(sender, instance: Attachment, **kwargs) -> None:
    """A deleted file row (removed chip, deleted chat or account, retention) takes its stored
    file and thumbnail along once the deletion is committed, unless another row (a version of
    the same message) still names them."""
    from django.db import transaction

    from chat.services.attachments.store import delete_files

    names = [instance.file.name, instance.thumbnail.name]
    transaction.on_commit(lambda: delete_files(names))


@receiver(pre_delete, sender=Thread)
def thread_deleting(sender, instance: Thread, **kwargs) -> None:
    from chat.services.turns.registry import stop_runners_of_deleted_thread

    stop_runners_of_deleted_thread(instance.pk)  # they record their usage, unlinked


@receiver(m2m_changed, sender=Team.members.through)
def team_members_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if reverse:  # user.teams.…: instance is the user, pk_set the teams
        team_ids = pk_set if pk_set is not None else instance.teams.values_list("pk", flat=True)
    else:
        team_ids = [instance.pk]
    announce_after_commit(threads_shared_with_teams(team_ids))


@receiver(post_save, sender=SiteSettings)
def site_settings_saved(sender, instance: SiteSettings, **kwargs) -> None:
    image_policy.forget()  # this process at once; other workers within a few seconds


@receiver(user_logged_out)
def session_logged_out(sender, request, user, **kwargs) -> None:
    """Logging out closes that session's open sockets at once, on every worker."""
    if user is not None and request is not None and request.session.session_key:
        session_binding.end_session_sockets(
            user.pk, request.session.session_key, session_binding.LOGGED_OUT
        )


@receiver([post_save, post_delete], sender=get_user_model())
def user_changed(sender, instance, update_fields=None, **kwargs) -> None:
    """A password or an active flag may have changed, or the user was removed (a form, the
    admin, the shell): each of the user's open sockets checks its session again once this is
    committed. Saves of other fields only (``last_login`` at each login) are left alone."""
    if update_fields is None or {"password", "is_active"} & set(update_fields):
        session_binding.check_sockets_after_commit([instance.pk])


@receiver(pre_save, sender=UsageRecord)
def usage_team(sender, instance: UsageRecord, **kwargs) -> None:
    if instance._state.adding:
        budgets.record_usage_team(instance)


@receiver(post_save, sender=UsageRecord)
def usage_recorded(sender, instance: UsageRecord, created: bool, **kwargs) -> None:
    if created:
        budgets.after_usage(instance)
