from django.urls import path

from chat.api import views

urlpatterns = [
    path("models", views.models, name="api-models"),
    path("responses", views.responses, name="api-responses"),
    path("chat/completions", views.chat_completions, name="api-chat-completions"),
]
