"""Public objects: on-demand thumbnails of published images, and the objects themselves when
storage is a local folder (on S3 the bucket or a CDN serves them)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.views import APIView

from infra.errors import ApiError, unavailable
from publishing import services as publishing
from uploads.models import Image, State
from uploads.serializers import ErrorSerializer


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class PublicObjectView(APIView):
    """Public thumbnails and approved originals. `GET /<md5>_<W>x<H>` and
    `GET /images/generate?key=...` make a missing thumbnail of a published image (as the old
    service did) and redirect to it, or serve it when storage is local."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        summary="A thumbnail of a published image, made on first request",
        parameters=[OpenApiParameter("key", str, description="<md5>_<W>x<H>[.webp]")],
        responses={
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="Redirect to the public object"),
            400: error("`invalid_key`"),
            404: error("`not_found`"),
        },
    )
    def get(self, request: Request, key: str | None = None) -> HttpResponseBase:
        key = key or request.query_params.get("key", "")
        try:
            md5, size, fmt = publishing.parse_thumbnail_key(key)
        except ValueError as exc:
            raise ApiError("invalid_key", str(exc)) from None
        not_found = ApiError("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
        try:
            # Only what generating needs; any published row of these bytes will do.
            published = Image.objects.filter(md5=md5, state=State.PUBLISHED)
            image = published.only("id", "md5", "format", "width", "height", "renditions")[:1].get()
            key, data = publishing.generate_on_demand(image, size, fmt)
        except Image.DoesNotExist:
            raise not_found from None
        except DatabaseError:
            raise unavailable(
                "database_unavailable", "The service is briefly unavailable."
            ) from None
        return serve_public(key, data)


def serve_public(key: str, data: bytes | None = None) -> HttpResponseBase:
    """A redirect to the public object on S3; on local storage its bytes (`data` when the
    caller has them already)."""
    storage = publishing.public_storage()
    if getattr(storage, "bucket_name", None):
        return HttpResponseRedirect(storage.url(key))
    if data is None:
        return MediaView.respond(key)
    return MediaView.bytes_response(key, data)


class MediaView(APIView):
    """Public objects on local storage (on S3 the bucket or a CDN serves them)."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        summary="A public object, when storage is local",
        responses={(200, "image/jpeg"): OpenApiTypes.BINARY, 404: error("`not_found`")},
    )
    def get(self, request: Request, key: str) -> HttpResponseBase:
        return self.respond(key)

    @staticmethod
    def respond(key: str) -> HttpResponseBase:
        storage = publishing.public_storage()
        if "/" in key or getattr(storage, "bucket_name", None) or not storage.exists(key):
            raise ApiError("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
        with storage.open(key, "rb") as stored:
            data = stored.read()
        return MediaView.bytes_response(key, data)

    @staticmethod
    def bytes_response(key: str, data: bytes) -> HttpResponse:
        response = HttpResponse(data, content_type=publishing.content_type_of(key, data[:8]))
        response["Cache-Control"] = settings.PUBLIC_CACHE_CONTROL
        response["X-Content-Type-Options"] = "nosniff"
        return response
