"""One JSON error shape for the whole API: `{"code": <stable code>, "error": <message>, ...}`.

The contract's two legacy bodies (missing fields, invalid optional fields) keep their fields and
gain the code. Nothing here ever renders HTML or a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

log = logging.getLogger(__name__)

EXAMPLE_BODY = {
    "data": {
        "image": "base64 encoded image",
        "name": "Optional name of image",
        "description": "Optional description",
        "featured": "Optional ISO8601 format",
    }
}


class ApiError(Exception):
    """An error the client can act on. `code` is stable; clients may branch on it."""

    def __init__(
        self,
        code: str,
        message: str,
        status_code: int = status.HTTP_400_BAD_REQUEST,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "error": self.message, **self.extra}


def missing_fields() -> ApiError:
    return ApiError(
        "missing_fields",
        "Bad Request. Required fields are missing.",
        extra={"example_body": EXAMPLE_BODY},
    )


def invalid_fields(errors: dict[str, str]) -> ApiError:
    return ApiError(
        "invalid_fields", "Some fields are invalid.", extra={"errors": {"data": errors}}
    )


def unavailable(code: str, message: str, retry_after: int = 30) -> ApiError:
    return ApiError(
        code,
        message,
        status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(retry_after)},
    )


def error_response(error: ApiError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status_code)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _from_drf(exc: exceptions.APIException) -> ApiError:
    if isinstance(exc, exceptions.NotAuthenticated):
        return ApiError(
            "not_authenticated",
            "An Authorization: Bearer <token> header is required.",
            status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": 'Bearer realm="imageservice"'},
        )
    if isinstance(exc, exceptions.AuthenticationFailed):
        return ApiError("invalid_token", "The token is not valid.", status.HTTP_403_FORBIDDEN)
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, int(getattr(exc, "wait", None) or 1))
        return ApiError(
            "throttled",
            f"Too many uploads. Try again in {wait} seconds.",
            status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return ApiError(
            "unsupported_media_type",
            "Send application/json or multipart/form-data.",
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    if isinstance(exc, exceptions.ParseError):
        return ApiError("malformed_json", "The request body is not valid JSON.")
    if isinstance(exc, exceptions.MethodNotAllowed):
        return ApiError("method_not_allowed", str(exc.detail), status.HTTP_405_METHOD_NOT_ALLOWED)
    if isinstance(exc, exceptions.NotFound):
        return ApiError("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, exceptions.PermissionDenied):
        return ApiError("forbidden", "You may not do this.", status.HTTP_403_FORBIDDEN)
    if isinstance(exc, exceptions.NotAcceptable):
        return ApiError("not_acceptable", "Responses are JSON.", status.HTTP_406_NOT_ACCEPTABLE)
    return ApiError(exc.default_code, str(exc.detail), exc.status_code)


def to_api_error(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return too_large()
    if isinstance(exc, SuspiciousOperation):
        return ApiError("bad_request", "The request was refused.")
    if isinstance(exc, Http404):
        return ApiError("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, exceptions.APIException):
        return _from_drf(exc)
    return None


def too_large() -> ApiError:
    return ApiError(
        "payload_too_large",
        "The request body is larger than the service accepts.",
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error becomes the one JSON shape."""
    from rest_framework.views import exception_handler as drf_exception_handler

    error = to_api_error(exc)
    if error is None:
        response = drf_exception_handler(exc, context)
        if response is not None:
            return response
        log.exception("unhandled error in %s", context.get("view").__class__.__name__)
        error = ApiError("server_error", "Something went wrong on our side.", 500)
    return Response(error.body(), status=error.status_code, headers=error.headers)


def json_error_view(code: str, message: str, status_code: int) -> Any:
    def view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
        return error_response(ApiError(code, message, status_code))

    return view


handler400 = json_error_view("bad_request", "Bad request.", 400)
handler403 = json_error_view("forbidden", "Forbidden.", 403)
handler404 = json_error_view("not_found", "Not found.", 404)
handler500 = json_error_view("server_error", "Something went wrong on our side.", 500)
