"""Whoever changes who may see a thread (a share, a team's members, a deleted thread), from a
view, the admin or the shell, the thread's open sockets hear of it; a deleted thread's running
answers are stopped on whichever worker runs them."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import receiver

from chat import image_policy
from chat.models import SiteSettings, Team, Thread, ThreadShare
from chat.services.sharing import announce_after_commit, threads_shared_with_teams


@receiver([post_save, post_delete], sender=ThreadShare)
def share_changed(sender, instance: ThreadShare, **kwargs) -> None:
    announce_after_commit([instance.thread_id])


@receiver(post_delete, sender=Thread)
def thread_deleted(sender, instance: Thread, **kwargs) -> None:
    announce_after_commit([instance.pk])


@receiver(pre_delete, sender=Thread)
def thread_deleting(sender, instance: Thread, **kwargs) -> None:
    from chat.services.generation import stop_runners_of_deleted_thread

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
