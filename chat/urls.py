from django.urls import path, re_path

import chat.request_ids  # noqa: F401 (registers the <id:…> converter)
from chat.views import image_viewer, pages, search, sharing, thread_settings, threads, tool_library

app_name = "chat"

urlpatterns = [
    path("", pages.home, name="home"),
    path("threads/new/", pages.new_thread, name="new-thread"),
    path("t/<id:thread_id>/", pages.thread_page, name="thread"),
    path("t/<id:thread_id>/earlier/", pages.earlier_turns, name="earlier"),
    path("t/<id:thread_id>/model/", threads.set_model, name="set-model"),
    path("t/<id:thread_id>/rename/", threads.rename_thread, name="rename"),
    path("t/<id:thread_id>/delete/", threads.delete_thread, name="delete"),
    path("t/<id:thread_id>/settings/", thread_settings.thread_settings, name="settings"),
    path("t/<id:thread_id>/preset/", thread_settings.save_preset, name="save-preset"),
    path("t/<id:thread_id>/sharing/", sharing.sharing_panel, name="sharing"),
    path(
        "t/<id:thread_id>/sharing/<id:share_id>/",
        sharing.change_share,
        name="share-change",
    ),
    path(
        "t/<id:thread_id>/sharing/<id:share_id>/revoke/",
        sharing.revoke_share,
        name="share-revoke",
    ),
    re_path(
        r"^t/(?P<thread_id>[0-9]{1,19})/export\.(?P<fmt>md|json)$",
        threads.export_thread,
        name="export",
    ),
    path("search/", search.search, name="search"),
    path("image/", image_viewer.remote_image_page, name="remote-image"),
    path("models/refresh/", pages.refresh_models, name="refresh-models"),
    path("tools/", tool_library.library, name="tools"),
    path("tools/new/", tool_library.create_tool, name="tool-create"),
    path("tools/<id:tool_id>/", tool_library.edit_tool, name="tool-edit"),
    path("tools/<id:tool_id>/save/", tool_library.update_tool, name="tool-update"),
    path("tools/<id:tool_id>/delete/", tool_library.delete_tool, name="tool-delete"),
    path("tools/builtin/<str:key>/", tool_library.add_builtin, name="tool-builtin"),
]
