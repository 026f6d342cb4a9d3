"""Request ids that follow an image from the upload through every task, the body limit, trust
in the proxy's forwarding headers, and the Content-Security-Policy."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from functools import cache
from urllib.parse import urlsplit

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
            if request.META.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
                # Gunicorn then closes instead of reading the unread body to reuse the
                # connection; a strict WSGI server (wsgiref) refuses hop-by-hop headers.
                response["Connection"] = "close"
            return response
        return self.get_response(request)


FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_REAL_IP")


@cache
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def from_trusted_proxy(address: str) -> bool:
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(peer in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


class TrustedProxyMiddleware:
    """Drop X-Forwarded-For, X-Forwarded-Proto and X-Real-IP unless the peer is one of
    TRUSTED_PROXIES: a client talking to gunicorn directly cannot pretend to be on TLS
    (SECURE_PROXY_SSL_HEADER) or to come from another address (the admin's login lockout)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not from_trusted_proxy(request.META.get("REMOTE_ADDR", "")):
            for name in FORWARDING_HEADERS:
                request.META.pop(name, None)
        return self.get_response(request)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


@cache
def content_security_policy(image_sources: tuple[str, ...]) -> str:
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": " ".join(["'self'", "data:", "blob:", *image_sources]),
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "worker-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def image_sources() -> tuple[str, ...]:
    """Where the console's images come from besides us: public storage, its CDN, the store."""
    urls = [settings.MEDIA_URL, settings.PUBLIC_BASE_URL, settings.AWS_S3_ENDPOINT_URL or ""]
    sources = {origin for origin in map(_origin, urls) if origin}
    if settings.BUCKET_NAME and not settings.AWS_S3_ENDPOINT_URL:
        sources.add("https://*.amazonaws.com")
    return tuple(sorted(sources | set(settings.CSP_EXTRA_IMG_SRC)))


class ContentSecurityPolicyMiddleware:
    """A strict Content-Security-Policy on every response (the admin and the API docs are the
    pages it matters for): no inline or foreign script, no framing, forms post only to us."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", content_security_policy(image_sources()))
        return response
