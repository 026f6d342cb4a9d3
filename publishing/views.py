"""Public objects: on-demand thumbnails of published images, and the objects themselves when
storage is a local folder (on S3 the bucket or a CDN serves them)."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from infra.errors import ApiError, unavailable
from publishing import budget, delivery, on_demand
from publishing import services as publishing
from publishing.delivery import Wanted
from uploads.models import Image
from uploads.serializers import ErrorSerializer

log = logging.getLogger(__name__)

IMAGE_RESPONSES = {
    (200, "image/jpeg"): OpenApiTypes.BINARY,
    (200, "image/webp"): OpenApiTypes.BINARY,
    (200, "image/avif"): OpenApiTypes.BINARY,
    302: OpenApiResponse(description="Redirect to the public object"),
    304: OpenApiResponse(description="Not modified (If-None-Match / If-Modified-Since)"),
}


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class RenderRateThrottle(SimpleRateThrottle):
    """Renders of keys that do not exist yet, per client address (RENDER_RATE)."""

    scope = "render"

    def get_rate(self) -> str:
        return settings.RENDER_RATE

    def get_cache_key(self, request: Any, view: Any) -> str:
        # X-Forwarded-For only counts when the number of trusted proxies is configured
        # (DRF's NUM_PROXIES): otherwise any client could name itself anew on each request.
        trusted = api_settings.NUM_PROXIES is not None
        ident = self.get_ident(request) if trusted else request.META.get("REMOTE_ADDR", "")
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ImagesAnyAccept(BaseContentNegotiation):
    """`Accept` chooses the image format here; errors are JSON whatever it lists."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class DeliveryView(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    content_negotiation_class = ImagesAnyAccept

    def deliver(self, request: Request, wanted: Wanted) -> HttpResponseBase:
        """The rendition `wanted` asks for, in the format the request accepts; made first if
        it is missing."""
        fmt = delivery.negotiate(wanted, request.headers.get("Accept", ""))
        try:
            image = on_demand.published_image(wanted.md5)
            key, made = on_demand.generate_on_demand(
                image, wanted, fmt, on_miss=lambda: self.count_render(request)
            )
        except Image.DoesNotExist:
            raise ApiError("not_found", "Not found.", status.HTTP_404_NOT_FOUND) from None
        except budget.Busy as busy:
            raise unavailable("busy", "Rendering is busy; try again.", busy.retry_after) from None
        except on_demand.SourceUnavailable:
            raise unavailable("source_unavailable", "The image cannot be rendered now.") from None
        except DatabaseError:
            raise unavailable(
                "database_unavailable", "The service is briefly unavailable."
            ) from None
        if made is None:
            return serve_public(request, key, negotiated=wanted.fmt is None)
        return serve_made(request, made, negotiated=wanted.fmt is None)

    def count_render(self, request: Request) -> None:
        throttle = RenderRateThrottle()
        if not throttle.allow_request(request, self):
            wait = max(1, int(throttle.wait() or 1))
            raise ApiError(
                "throttled",
                f"Too many new renders. Try again in {wait} seconds.",
                status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )


class PublicObjectView(DeliveryView):
    """Public thumbnails. `GET /<md5>_<W>x<H>[.jpg|.webp|.avif]`, `GET /images/generate?key=...`
    and `GET /generate?key=...` (where the old bucket's redirect for a missing object went)
    make a missing thumbnail of a published image and redirect to it, or serve it when storage
    is local. Without an extension the format follows `Accept` (AVIF, WebP, JPEG)."""

    @extend_schema(
        summary="A thumbnail of a published image, made on first request",
        parameters=[OpenApiParameter("key", str, description="<md5>_<W>x<H>[.jpg|.webp|.avif]")],
        responses={
            **IMAGE_RESPONSES,
            400: error("`invalid_key`"),
            403: error("`signature_required`: that size or mode needs a signed URL"),
            404: error("`not_found`"),
            429: error("`throttled`: too many new renders from this client, with Retry-After"),
            503: error("`busy` (no render turn in time), `source_unavailable`; Retry-After"),
        },
    )
    def get(self, request: Request, key: str | None = None) -> HttpResponseBase:
        key = key or request.query_params.get("key", "")
        try:
            wanted = delivery.parse(key)
        except delivery.SignatureRequired as exc:
            raise ApiError("signature_required", str(exc), status.HTTP_403_FORBIDDEN) from None
        except ValueError as exc:
            raise ApiError("invalid_key", str(exc)) from None
        return self.deliver(request, wanted)


class SignedObjectView(DeliveryView):
    """`GET /s/<sig>/<md5>_<W>x<H>[_fill][.jpg|.webp|.avif][?expires=<unix time>]`: any size up
    to 5000 px a side, fit or fill, for URLs signed with a key of URL_SIGNING_KEYS."""

    @extend_schema(
        summary="Any size or the fill mode of a published image, through a signed URL",
        parameters=[OpenApiParameter("expires", int, required=False)],
        responses={
            **IMAGE_RESPONSES,
            400: error("`invalid_key`"),
            403: error("`bad_signature`: missing, wrong or expired signature"),
            404: error("`not_found` (also when signed URLs are off)"),
            429: error("`throttled`, with Retry-After"),
            503: error("`busy`, `source_unavailable`, with Retry-After"),
        },
    )
    def get(self, request: Request, signature: str, rest: str) -> HttpResponseBase:
        expires = request.query_params.get("expires")
        try:
            wanted = delivery.parse_signed(signature, rest, expires, now=time.time())
        except LookupError:
            raise ApiError("not_found", "Not found.", status.HTTP_404_NOT_FOUND) from None
        except delivery.BadSignature as exc:
            raise ApiError("bad_signature", str(exc), status.HTTP_403_FORBIDDEN) from None
        except ValueError as exc:
            raise ApiError("invalid_key", str(exc)) from None
        return self.deliver(request, wanted)


def serve_public(request: HttpRequest, key: str, *, negotiated: bool = False) -> HttpResponseBase:
    """A redirect to the public object on S3 (the bucket sends its own ETag, Last-Modified and
    Cache-Control); on local storage its bytes."""
    storage = publishing.public_storage()
    if getattr(storage, "bucket_name", None):
        return redirect(storage.url(key), negotiated)
    return MediaView.respond(request, key, negotiated=negotiated)


def serve_made(request: HttpRequest, made: on_demand.Made, *, negotiated: bool) -> HttpResponseBase:
    """A rendition made for this request, answered before it is kept: its bytes, or on S3 a
    redirect once it is stored. It is kept (stored, recorded, its render turn given up) when the
    WSGI server closes the response, after sending it."""
    try:
        response = answer_made(request, made, negotiated)
    except BaseException:
        made.keep()
        raise
    # Django's hook for what follows the answer (FileResponse closes its file there): the WSGI
    # server calls close() once the response is sent, or the client gone.
    response._resource_closers.append(made.keep)  # type: ignore[attr-defined]
    return response


def answer_made(request: HttpRequest, made: on_demand.Made, negotiated: bool) -> HttpResponseBase:
    storage = publishing.public_storage()
    if getattr(storage, "bucket_name", None):
        try:
            made.store()  # the bucket serves what the redirect names
        except Exception:  # botocore's errors are not OSErrors
            log.warning("cannot store %s; sending its bytes instead", made.key, exc_info=True)
        else:
            return redirect(storage.url(made.key), negotiated)
    # Last-Modified: now; the file written after the answer is a few ms younger.
    return object_response(request, made.key, made.data, timezone.now(), negotiated)


def redirect(url: str, negotiated: bool) -> HttpResponseBase:
    response = HttpResponseRedirect(url)
    if negotiated:
        patch_vary_headers(response, ["Accept"])
    return response


class MediaView(APIView):
    """Public objects on local storage (on S3 the bucket or a CDN serves them)."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    content_negotiation_class = ImagesAnyAccept

    @extend_schema(
        summary="A public object, when storage is local",
        responses={**IMAGE_RESPONSES, 404: error("`not_found`")},
    )
    def get(self, request: Request, key: str) -> HttpResponseBase:
        return self.respond(request, key)

    @staticmethod
    def respond(request: HttpRequest, key: str, *, negotiated: bool = False) -> HttpResponseBase:
        storage = publishing.public_storage()
        if "/" in key or getattr(storage, "bucket_name", None) or not storage.exists(key):
            raise ApiError("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
        with storage.open(key, "rb") as stored:
            data = stored.read()
        return object_response(request, key, data, storage.get_modified_time(key), negotiated)


def object_response(
    request: HttpRequest, key: str, data: bytes, modified: datetime, negotiated: bool = False
) -> HttpResponseBase:
    """The object with the validators S3 would send (ETag: the MD5 of the bytes, as S3's for
    a single PUT; Last-Modified), answered 304 when the client's copy is current; a HEAD gets
    the headers and no body."""
    response = HttpResponse(data, content_type=publishing.content_type_of(key, data[:8]))
    response["Cache-Control"] = settings.PUBLIC_CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    response["ETag"] = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    response["Last-Modified"] = http_date(modified.timestamp())
    if negotiated:
        patch_vary_headers(response, ["Accept"])
    conditional = get_conditional_response(
        request, etag=response["ETag"], last_modified=int(modified.timestamp()), response=response
    )
    if conditional is not None and conditional is not response:
        return conditional
    if request.method == "HEAD":
        response["Content-Length"] = str(len(data))
        response.content = b""
    return response
