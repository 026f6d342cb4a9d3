"""Request parsing that fails cleanly: malformed, deeply nested or non-object JSON is a 400."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.parsers import JSONParser

from uploads.errors import ApiError


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            raise ApiError("empty_body", "The request body is empty.")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError("malformed_json", "The request body is not valid JSON.") from None
        except RecursionError:
            raise ApiError("malformed_json", "The JSON is nested too deeply.") from None
        if not isinstance(data, dict):
            raise ApiError("malformed_json", "The request body must be a JSON object.")
        return data
