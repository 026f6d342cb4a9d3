"""The upload API: thin views that validate, call one thing and respond."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from uploads import publishing
from uploads.authentication import Uploader
from uploads.errors import ApiError, unavailable
from uploads.models import Image, State
from uploads.serializers import (
    ErrorSerializer,
    ImageSerializer,
    UploadJsonSerializer,
    UploadMultipartSerializer,
    parse_upload,
)
from uploads.services import receive_upload

_in_flight = threading.BoundedSemaphore(settings.MAX_CONCURRENT_UPLOADS)


@contextmanager
def upload_slot() -> Iterator[None]:
    """Shed load instead of queueing: past MAX_CONCURRENT_UPLOADS per process, answer 503."""
    if not _in_flight.acquire(blocking=False):
        raise unavailable("overloaded", "The service is busy. Try again shortly.", retry_after=2)
    try:
        yield
    finally:
        _in_flight.release()


class UploaderRateThrottle(SimpleRateThrottle):
    """Per uploader (the token's user_id), in the shared cache."""

    scope = "uploads"

    def get_rate(self) -> str:
        return str(settings.UPLOAD_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": request.user.id}


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


ERRORS = {
    400: error(
        "`missing_fields`, `invalid_fields`, `malformed_json`, `invalid_image`, "
        "`invalid_data_url`, `invalid_base64`, `empty_image`, `type_mismatch`"
    ),
    401: error("`not_authenticated`: no Authorization header"),
    403: error("`invalid_token`: the token failed verification"),
    413: error("`payload_too_large`"),
    415: error("`unsupported_image_format`, `unsupported_media_type`"),
    422: error(
        "`corrupt_image`, `image_too_large`, `image_too_small`, `too_many_frames`, "
        "`checksum_conflict`"
    ),
    429: error("`throttled`, with Retry-After"),
    503: error("`storage_unavailable`, `database_unavailable`, `overloaded`"),
}


class UploadView(APIView):
    throttle_classes = [UploaderRateThrottle]

    @extend_schema(
        summary="Upload an image (JSON with base64 or a data URL, or multipart with an image part)",
        request={
            "application/json": UploadJsonSerializer,
            "multipart/form-data": UploadMultipartSerializer,
        },
        responses={202: ImageSerializer, 200: ImageSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        with upload_slot():
            payload = parse_upload(request)
            uploader = cast(Uploader, request.user)  # set by PinsterTokenAuthentication
            image, created = receive_upload(uploader=uploader, payload=payload)
        body = ImageSerializer(image).data
        headers = {"Location": body["status_url"]}
        return Response(
            body, status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK, headers=headers
        )


class ImageDetailView(APIView):
    @extend_schema(
        operation_id="get_image",
        responses={
            200: ImageSerializer,
            401: ERRORS[401],
            403: ERRORS[403],
            404: error("`not_found`: no such image of this uploader"),
        },
    )
    def get(self, request: Request, pk: str) -> Response:
        try:
            image = Image.objects.filter(pk=pk, user_id=request.user.id).first()
        except DatabaseError:
            raise unavailable(
                "database_unavailable", "The service is briefly unavailable."
            ) from None
        if image is None:
            return Response({"code": "not_found", "error": "Not found."}, status.HTTP_404_NOT_FOUND)
        return Response(ImageSerializer(image).data)


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
