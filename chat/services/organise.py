"""What a user does to organise their own chats: pin, archive, folders, rename, delete.

Every change here leaves ``updated_at`` alone (``QuerySet.update``): organising a chat is not
activity in it, so it keeps its place among the dates."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chat.models import Folder, Thread

FOLDER_NAME_LENGTH = 100


class Refused(ValueError):
    """A change that cannot be made, with the reason to show."""


def own_thread(user: AbstractBaseUser, thread_id: int) -> Thread | None:
    """The user's own chat, else None (a shared chat is organised by its owner only)."""
    return Thread.objects.filter(owner=user, pk=thread_id).first()


def own_folder(user: AbstractBaseUser, folder_id: int) -> Folder | None:
    return Folder.objects.filter(owner=user, pk=folder_id).first()


def set_pinned(thread: Thread, pinned: bool) -> None:
    thread.pinned_at = timezone.now() if pinned else None
    Thread.objects.filter(pk=thread.pk).update(pinned_at=thread.pinned_at)


def set_archived(thread: Thread, archived: bool) -> None:
    thread.archived_at = timezone.now() if archived else None
    Thread.objects.filter(pk=thread.pk).update(archived_at=thread.archived_at)


def move(thread: Thread, folder: Folder | None) -> None:
    """Into ``folder`` (the owner's, checked by the caller), or out of any with None."""
    thread.folder = folder
    Thread.objects.filter(pk=thread.pk).update(folder=folder)


def rename(thread: Thread, title: str) -> None:
    """A title the user set: a model never replaces it."""
    title = " ".join(title.split())[:200]
    if not title:
        raise Refused(_("A chat needs a title."))
    thread.title, thread.title_source = title, Thread.TitleSource.USER
    Thread.objects.filter(pk=thread.pk).update(title=title, title_source=thread.title_source)


def _folder_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise Refused(_("A folder needs a name."))
    if len(name) > FOLDER_NAME_LENGTH:
        raise Refused(
            _("A folder name has at most %(limit)s characters.") % {"limit": FOLDER_NAME_LENGTH}
        )
    return name


def create_folder(user: AbstractBaseUser, name: str) -> Folder:
    name = _folder_name(name)
    try:
        with transaction.atomic():
            return Folder.objects.create(owner=user, name=name)
    except IntegrityError as exc:
        raise Refused(_("You already have a folder named “%(name)s”.") % {"name": name}) from exc


def rename_folder(folder: Folder, name: str) -> None:
    folder.name = _folder_name(name)
    try:
        with transaction.atomic():
            folder.save(update_fields=["name"])
    except IntegrityError as exc:
        raise Refused(
            _("You already have a folder named “%(name)s”.") % {"name": folder.name}
        ) from exc


def delete_folder(folder: Folder) -> None:
    """The folder goes; its chats go back to the dated list (none is deleted)."""
    folder.delete()
