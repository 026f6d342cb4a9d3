from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from infra.keys import upload_token_claims


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
        if 60 * options["minutes"] > settings.MAX_TOKEN_LIFETIME_SECONDS:
            raise CommandError(
                f"--minutes {options['minutes']} is longer than MAX_TOKEN_LIFETIME_SECONDS "
                f"({settings.MAX_TOKEN_LIFETIME_SECONDS} s): the service would refuse the token"
            )
        given = {
            name: options[name]
            for name in ("imageable_type", "imageable_id", "user_id")
            if options[name] is not None  # unset ids: new UUIDs, as PinsterApi would make
        }
        claims = upload_token_claims(
            issuer=settings.PINSTER_API_URL,
            audience=settings.IMAGE_SERVICE_URL,
            lifetime=60 * options["minutes"],
            **given,
        )
        self.stdout.write(jwt.encode(claims, key_path.read_text(), algorithm="RS256"))
