"""Request ids that follow an image from the upload through every task, and the body limit."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import status

from infra.errors import ApiError, error_response, too_large
from infra.logging import reset_request_id, set_request_id

SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Take a well-formed X-Request-ID from the client or a proxy, else make one; echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = given if SAFE_ID.match(given) else uuid.uuid4().hex
        token = set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class BodySizeLimitMiddleware:
    """Refuse an oversized body from its Content-Length with a JSON 413, before reading it, and
    a body without one (chunked) with a JSON 411: Django would read it as empty."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("HTTP_TRANSFER_ENCODING") and not request.META.get("CONTENT_LENGTH"):
            return error_response(
                ApiError(
                    "length_required",
                    "Send the body with a Content-Length header; chunked bodies are refused.",
                    status.HTTP_411_LENGTH_REQUIRED,
                )
            )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BYTES:
            response = error_response(too_large())
            response["Connection"] = "close"
            return response
        return self.get_response(request)
