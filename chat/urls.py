from django.urls import path, re_path

import chat.request_ids  # noqa: F401 (registers the <id:…> converter)
from chat.views import (
    attachments,
    feedback,
    image_viewer,
    imports,
    pages,
    prompts,
    search,
    share_links,
    sharing,
    sidebar,
    thread_settings,
    threads,
    tool_library,
)
from chat.views import mcp as mcp_views

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
    path("t/<id:thread_id>/links/", share_links.links_panel, name="share-links"),
    path(
        "t/<id:thread_id>/links/<id:link_id>/revoke/",
        share_links.revoke_link,
        name="share-link-revoke",
    ),
    path("s/<str:token>/", share_links.shared_page, name="shared-link"),
    path("s/<str:token>/continue/", share_links.continue_copy, name="shared-link-continue"),
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
    # The sidebar: paging, each chat's menu, folders, the archive (chat/sidebar.py).
    path("sidebar/more/", sidebar.more_chats, name="sidebar-more"),
    path("t/<id:thread_id>/menu/", sidebar.chat_menu, name="chat-menu"),
    path("t/<id:thread_id>/pin/", sidebar.pin, name="pin"),
    path("t/<id:thread_id>/archive/", sidebar.archive, name="archive"),
    path("t/<id:thread_id>/move/", sidebar.move, name="move"),
    path("t/<id:thread_id>/retitle/", sidebar.rename, name="retitle"),
    path("t/<id:thread_id>/remove/", sidebar.delete, name="remove"),
    path("folders/new/", sidebar.create_folder, name="folder-create"),
    path("folders/<id:folder_id>/rename/", sidebar.rename_folder, name="folder-rename"),
    path("folders/<id:folder_id>/delete/", sidebar.delete_folder, name="folder-delete"),
    path("archived/", sidebar.archived, name="archived"),
    # Feedback on answers (chat/feedback.py).
    path(
        "t/<id:thread_id>/turns/<id:turn_id>/feedback/",
        feedback.give_feedback,
        name="feedback",
    ),
    path("import/", imports.import_chats, name="import"),
    path("prompts/", prompts.library, name="prompts"),
    path("prompts/new/", prompts.save_prompt, name="prompt-create"),
    path("prompts/menu/", prompts.menu, name="prompt-menu"),
    path("prompts/<id:prompt_id>/", prompts.edit_prompt, name="prompt-edit"),
    path("prompts/<id:prompt_id>/save/", prompts.save_prompt, name="prompt-update"),
    path("prompts/<id:prompt_id>/delete/", prompts.delete_prompt, name="prompt-delete"),
    path("prompts/<id:prompt_id>/use/", prompts.use_prompt, name="prompt-use"),
    path("tools/mcp/<id:server_id>/refresh/", mcp_views.refresh_server, name="mcp-refresh"),
    path("tools/mcp/tool/<id:tool_id>/add/", mcp_views.add_tool, name="mcp-add"),
    # Files attached to messages (chat/views/attachments.py).
    path("files/upload/", attachments.upload, name="attachment-upload"),
    path("files/<uuid:attachment_id>/", attachments.serve, name="attachment"),
    path(
        "files/<uuid:attachment_id>/thumbnail/",
        attachments.serve_thumbnail,
        name="attachment-thumbnail",
    ),
    path("files/<uuid:attachment_id>/remove/", attachments.remove, name="attachment-remove"),
]
