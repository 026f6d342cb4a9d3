from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from infra.keys import generate_key_pair


class Command(BaseCommand):
    help = "Generate an RSA key pair for RS256 tokens; prints the PEMs and their base64 forms."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--out", type=Path, help="write <out>_private.pem and <out>_public.pem")

    def handle(self, *args: Any, out: Path | None = None, **options: Any) -> None:
        private, public = generate_key_pair()
        if out is not None:
            private_path = out.with_name(out.name + "_private.pem")
            public_path = out.with_name(out.name + "_public.pem")
            if private_path.exists():
                raise CommandError(f"{private_path} exists; refusing to overwrite a key")
            private_path.write_text(private)
            private_path.chmod(0o600)
            public_path.write_text(public)
            self.stdout.write(f"wrote {private_path} and {public_path}")
            return
        self.stdout.write(public)
        self.stdout.write("# base64 of the public PEM (API_PUBLIC_KEY style):")
        self.stdout.write(base64.b64encode(public.encode()).decode())
        self.stdout.write(private)
        self.stdout.write("# base64 of the private PEM (PRIVATE_KEY style):")
        self.stdout.write(base64.b64encode(private.encode()).decode())
