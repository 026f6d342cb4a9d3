"""The upload API: thin views that validate, call one thing and respond."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from infra.errors import unavailable
from uploads.authentication import Uploader
from uploads.models import Image
from uploads.parsers import StrictJSONParser, UploadMultipartParser
from uploads.serializers import (
    ErrorSerializer,
    ImageSerializer,
    UploadJsonSerializer,
    UploadMultipartSerializer,
    image_body,
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
        "`invalid_data_url`, `invalid_base64`, `empty_image`"
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
    parser_classes = [StrictJSONParser, UploadMultipartParser]
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
        body = image_body(image)
        headers = {"Location": body["status_url"]}
        return Response(
            body, status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK, headers=headers
        )


def readable_by(uploader: Uploader) -> Q:
    """An image is readable by its uploader and by any token for its imageable: the same bytes
    for the same imageable from another user answer with the existing image, which that user
    must then be able to follow."""
    return Q(user_id=uploader.id) | Q(
        imageable_type=uploader.imageable_type, imageable_id=uploader.imageable_id
    )


class ImageDetailView(APIView):
    @extend_schema(
        operation_id="get_image",
        responses={
            200: ImageSerializer,
            401: ERRORS[401],
            403: ERRORS[403],
            404: error("`not_found`: no such image of this uploader or imageable"),
        },
    )
    def get(self, request: Request, pk: str) -> Response:
        uploader = cast(Uploader, request.user)
        try:
            image = Image.objects.filter(readable_by(uploader), pk=pk).first()
        except DatabaseError:
            raise unavailable(
                "database_unavailable", "The service is briefly unavailable."
            ) from None
        if image is None:
            return Response({"code": "not_found", "error": "Not found."}, status.HTTP_404_NOT_FOUND)
        return Response(image_body(image))
