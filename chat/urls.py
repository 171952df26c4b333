from django.urls import path, re_path

import chat.request_ids  # noqa: F401 (registers the <id:…> converter)
from chat import (
    image_viewer,
    import_views,
    prompt_library,
    share_link_views,
    sharing_views,
    thread_settings,
    tool_library,
    views,
)

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("threads/new/", views.new_thread, name="new-thread"),
    path("t/<id:thread_id>/", views.thread_page, name="thread"),
    path("t/<id:thread_id>/earlier/", views.earlier_turns, name="earlier"),
    path("t/<id:thread_id>/model/", views.set_model, name="set-model"),
    path("t/<id:thread_id>/rename/", views.rename_thread, name="rename"),
    path("t/<id:thread_id>/delete/", views.delete_thread, name="delete"),
    path("t/<id:thread_id>/settings/", thread_settings.thread_settings, name="settings"),
    path("t/<id:thread_id>/preset/", thread_settings.save_preset, name="save-preset"),
    path("t/<id:thread_id>/sharing/", sharing_views.sharing_panel, name="sharing"),
    path(
        "t/<id:thread_id>/sharing/<id:share_id>/",
        sharing_views.change_share,
        name="share-change",
    ),
    path(
        "t/<id:thread_id>/sharing/<id:share_id>/revoke/",
        sharing_views.revoke_share,
        name="share-revoke",
    ),
    path("t/<id:thread_id>/links/", share_link_views.links_panel, name="share-links"),
    path(
        "t/<id:thread_id>/links/<id:link_id>/revoke/",
        share_link_views.revoke_link,
        name="share-link-revoke",
    ),
    path("s/<str:token>/", share_link_views.shared_page, name="shared-link"),
    path("s/<str:token>/continue/", share_link_views.continue_copy, name="shared-link-continue"),
    re_path(
        r"^t/(?P<thread_id>[0-9]{1,19})/export\.(?P<fmt>md|json)$",
        views.export_thread,
        name="export",
    ),
    path("search/", views.search, name="search"),
    path("image/", image_viewer.remote_image_page, name="remote-image"),
    path("models/refresh/", views.refresh_models, name="refresh-models"),
    path("tools/", tool_library.library, name="tools"),
    path("tools/new/", tool_library.create_tool, name="tool-create"),
    path("tools/<id:tool_id>/", tool_library.edit_tool, name="tool-edit"),
    path("tools/<id:tool_id>/save/", tool_library.update_tool, name="tool-update"),
    path("tools/<id:tool_id>/delete/", tool_library.delete_tool, name="tool-delete"),
    path("tools/builtin/<str:key>/", tool_library.add_builtin, name="tool-builtin"),
    path("import/", import_views.import_chats, name="import"),
    path("prompts/", prompt_library.library, name="prompts"),
    path("prompts/new/", prompt_library.save_prompt, name="prompt-create"),
    path("prompts/menu/", prompt_library.menu, name="prompt-menu"),
    path("prompts/<id:prompt_id>/", prompt_library.edit_prompt, name="prompt-edit"),
    path("prompts/<id:prompt_id>/save/", prompt_library.save_prompt, name="prompt-update"),
    path("prompts/<id:prompt_id>/delete/", prompt_library.delete_prompt, name="prompt-delete"),
    path("prompts/<id:prompt_id>/use/", prompt_library.use_prompt, name="prompt-use"),
]
