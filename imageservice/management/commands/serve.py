from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Prepare and start the service: migrate, collect static files, create a development "
        "admin, print how to use it, then run gunicorn (embedded worker included when no "
        "BROKER_URL is set)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1:8000"))
        parser.add_argument("--no-admin", action="store_true", help="do not create the dev admin")

    def handle(self, *args: Any, bind: str, no_admin: bool, **options: Any) -> None:
        if not os.environ.get("IMAGE_SERVICE_URL"):
            # Tokens name the service by its URL: follow the address actually served.
            os.environ["IMAGE_SERVICE_URL"] = settings.IMAGE_SERVICE_URL = f"http://{bind}"
            os.environ.setdefault("MEDIA_URL", f"http://{bind}/media/")
        call_command("check")  # a bad setting stops here, named (imageservice/checks.py)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("setup_roles", verbosity=0)
        login = None if no_admin else self.dev_admin()
        self.print_welcome(bind, login)
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        argv = [
            gunicorn,
            "imageservice.wsgi",
            "-c",
            str(settings.BASE_DIR / "gunicorn.conf.py"),
            "--bind",
            bind,
        ]
        if not settings.BROKER_URL:
            # One process: the in-memory broker and its worker threads live in it.
            argv += ["--workers", "1", "--threads", "8"]
        sys.stdout.flush()
        os.execv(gunicorn, argv)  # noqa: S606 - replace this process with the server

    def dev_admin(self) -> tuple[str, str]:
        """A superuser `admin` with a password kept in VAR_DIR/admin_password."""
        path = Path(settings.VAR_DIR) / "admin_password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        password = path.read_text().strip()
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        return "admin", password

    def print_welcome(self, bind: str, login: tuple[str, str] | None) -> None:
        from io import StringIO

        out = StringIO()
        call_command(
            "sign_upload_token", minutes=settings.MAX_TOKEN_LIFETIME_SECONDS // 60, stdout=out
        )
        token = out.getvalue().strip()
        url = settings.IMAGE_SERVICE_URL
        lines = [
            "",
            f"ImageService is starting on http://{bind}  (public URL: {url})",
            f"  API docs:   {url}/api/docs/",
            f"  Admin:      {url}/{settings.ADMIN_PATH}"
            + (f"  (login: {login[0]} / {login[1]})" if login else ""),
            f"  Broker:     {settings.BROKER_URL or 'embedded (in-process worker threads)'}",
            "",
            "Upload a photo (the token below is a development token valid for "
            f"{settings.MAX_TOKEN_LIFETIME_SECONDS // 60} minutes: "
            "`./dev manage sign_upload_token` signs another):",
            f"  TOKEN={token}",
            '  (printf \'{"data": {"image": "data:image/jpeg;base64,\'; base64 -w0 photo.jpg;'
            " printf '\"}}') |",
            f'  curl -s -X POST {url}/ -H "Authorization: Bearer $TOKEN" \\',
            "       -H 'Content-Type: application/json' --data-binary @-",
            "or as multipart:",
            f'  curl -s -X POST {url}/ -H "Authorization: Bearer $TOKEN" -F image=@photo.jpg',
            "then follow the status_url from the answer:",
            f'  curl -s -H "Authorization: Bearer $TOKEN" {url}/api/v1/images/<id>',
            "",
        ]
        self.stdout.write("\n".join(lines))
