from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Sign a development upload token as PinsterApi would (RS256, its claims), with the "
        "development Pinster key under VAR_DIR/keys or --key."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user-id", default=None, help="default: a new UUID")
        parser.add_argument("--imageable-type", default="Pin")
        parser.add_argument("--imageable-id", default=None, help="default: a new UUID")
        parser.add_argument("--minutes", type=int, default=10, help="lifetime (PinsterApi: 10)")
        parser.add_argument("--key", type=Path, help="PinsterApi's private key (PEM file)")

    def handle(self, *args: Any, **options: Any) -> None:
        key_path = options["key"] or Path(settings.VAR_DIR) / "keys" / "pinster_private.pem"
        if not key_path.exists():
            raise CommandError(f"no private key at {key_path}; pass --key")
        now = int(time.time())
        claims = {
            "iss": settings.PINSTER_API_URL,
            "aud": settings.IMAGE_SERVICE_URL,
            "nbf": now - 1,
            "exp": now + 60 * options["minutes"],
            "imageable_type": options["imageable_type"],
            "imageable_id": options["imageable_id"] or str(uuid.uuid4()),
            "user_id": options["user_id"] or str(uuid.uuid4()),
        }
        self.stdout.write(jwt.encode(claims, key_path.read_text(), algorithm="RS256"))
