from __future__ import annotations

from django.urls import path, re_path

from publishing import views

urlpatterns = [
    path("images/generate", views.PublicObjectView.as_view(), name="generate-thumbnail"),
    # Where the old bucket's routing rule sent a request for a missing object.
    path("generate", views.PublicObjectView.as_view(), name="generate"),
    re_path(r"^media/(?P<key>[^/]+)$", views.MediaView.as_view(), name="media"),
    re_path(
        r"^s/(?P<signature>[A-Za-z0-9_-]+)/(?P<rest>[0-9a-fA-F]{32}_[^/]+)$",
        views.SignedObjectView.as_view(),
        name="signed",
    ),
    re_path(
        r"^(?P<key>[0-9a-fA-F]{32}_[^/]+)$", views.PublicObjectView.as_view(), name="thumbnail"
    ),
]
