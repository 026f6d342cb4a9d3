from __future__ import annotations

from django.urls import path, re_path

from uploads import views

urlpatterns = [
    path("", views.UploadView.as_view(), name="upload-root"),
    path("api/v1/images/", views.UploadView.as_view(), name="upload"),
    path("api/v1/images/<uuid:pk>", views.ImageDetailView.as_view(), name="image-detail"),
    path("images/generate", views.PublicObjectView.as_view(), name="generate-thumbnail"),
    re_path(r"^media/(?P<key>[^/]+)$", views.MediaView.as_view(), name="media"),
    re_path(
        r"^(?P<key>[0-9a-fA-F]{32}_[^/]+)$", views.PublicObjectView.as_view(), name="thumbnail"
    ),
]
