"""Search across the chats a user can see."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from chat.services import conversation
from chat.services import search as thread_search
from chat.views.htmx_request import HtmxHttpRequest


@require_GET
def search(request: HtmxHttpRequest) -> HttpResponse:
    """Chats the user can see that match ``q``: a full page, or only the results for htmx."""
    query = thread_search.normalize_query(request.GET.get("q", ""))
    context = {
        "query": query,
        "searched": thread_search.is_searchable(query),
        "results": thread_search.search_threads(request.user, query),
    }
    if request.htmx:
        response = render(request, "chat/search.html#results", context)
    else:
        context |= {"thread": None, **conversation.sidebar_lists(request.user)}
        response = render(request, "chat/search.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response
