from __future__ import annotations

from django.urls import path

from uploads import views

urlpatterns = [
    path("", views.UploadView.as_view(), name="upload-root"),
    path("api/v1/images/", views.UploadView.as_view(), name="upload"),
    # Without the slash too: CommonMiddleware would answer a POST with an HTML 301.
    path("api/v1/images", views.UploadView.as_view(), name="upload-no-slash"),
    path("api/v1/images/<uuid:pk>", views.ImageDetailView.as_view(), name="image-detail"),
]
