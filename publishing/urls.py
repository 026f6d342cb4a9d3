from __future__ import annotations

from django.urls import path, re_path

from publishing import views

urlpatterns = [
    path("images/generate", views.PublicObjectView.as_view(), name="generate-thumbnail"),
    re_path(r"^media/(?P<key>[^/]+)$", views.MediaView.as_view(), name="media"),
    re_path(
        r"^(?P<key>[0-9a-fA-F]{32}_[^/]+)$", views.PublicObjectView.as_view(), name="thumbnail"
    ),
]
