"""The development secret and key pairs, made by an explicit step (settings only read them).

    python -m infra.devsetup [--var-dir DIR] [--env]

`./dev run` and the test settings call it; a deployment gives SECRET_KEY, API_PUBLIC_KEY and
PRIVATE_KEY instead. Safe to run twice: existing files are kept. `--env` also prints those
settings (and a METRICS_TOKEN) as `.env` lines, for a trial of the container stack: the keys are
the development pairs, so `var/keys/pinster_private.pem` signs upload tokens it accepts.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
from pathlib import Path

from infra.keys import DEV_KEY_STEMS, dev_key_pair

SECRET_FILE = "secret_key"


def ensure_dev_files(var_dir: Path) -> None:
    """VAR_DIR, its development secret and the two development key pairs."""
    var_dir.mkdir(parents=True, exist_ok=True)
    secret = var_dir / SECRET_FILE
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(50))
        secret.chmod(0o600)
    for stem in DEV_KEY_STEMS.values():
        dev_key_pair(var_dir / "keys", stem)


def env_lines(var_dir: Path) -> list[str]:
    """The development secret and keys as settings (keys as base64 of their PEM text)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    keys = var_dir / "keys"
    return [
        f"SECRET_KEY={(var_dir / SECRET_FILE).read_text().strip()}",
        f"API_PUBLIC_KEY={b64(keys / 'pinster_public.pem')}",
        f"PRIVATE_KEY={b64(keys / 'service_private.pem')}",
        f"METRICS_TOKEN={secrets.token_urlsafe(24)}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--var-dir", default=os.environ.get("VAR_DIR", "var"))
    parser.add_argument("--env", action="store_true", help="print the settings as .env lines")
    args = parser.parse_args(argv)
    var_dir = Path(args.var_dir)
    ensure_dev_files(var_dir)
    if args.env:
        print("\n".join(env_lines(var_dir)))


if __name__ == "__main__":
    main()
