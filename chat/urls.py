from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("threads/new/", views.new_thread, name="new-thread"),
    path("t/<int:thread_id>/", views.thread_page, name="thread"),
    path("t/<int:thread_id>/model/", views.set_model, name="set-model"),
    path("t/<int:thread_id>/rename/", views.rename_thread, name="rename"),
    path("t/<int:thread_id>/delete/", views.delete_thread, name="delete"),
    path("models/refresh/", views.refresh_models, name="refresh-models"),
]
