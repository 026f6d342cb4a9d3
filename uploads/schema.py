"""OpenAPI (drf-spectacular) description of the upload token authentication."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class PinsterTokenScheme(OpenApiAuthenticationExtension):
    target_class = "uploads.authentication.PinsterTokenAuthentication"
    name = "PinsterUploadToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "RS256 token issued by PinsterApi (aud: this service, iss: PinsterApi).",
        }
