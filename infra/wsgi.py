"""Django's WSGI handler, with a request that survives any Content-Type header.

Django parses the Content-Type's parameters while it builds the request, before any middleware
runs: an RFC 2231 parameter in an unknown charset (`multipart/form-data; boundary*=bogus''x`)
raised ValueError there, and the server answered a bare 500 on every endpoint. Here such a
header keeps its media type and loses its parameters, so the view answers as it does for a
missing boundary or charset: a JSON 400 or 415 with its usual code.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.wsgi import WSGIHandler, WSGIRequest


class TolerantWSGIRequest(WSGIRequest):
    def _set_content_type_params(self, meta: Any) -> None:
        try:
            super()._set_content_type_params(meta)  # type: ignore[misc]  # private in the stubs
        except ValueError:
            self.content_type = meta.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
            self.content_params = {}


class TolerantWSGIHandler(WSGIHandler):
    request_class = TolerantWSGIRequest
