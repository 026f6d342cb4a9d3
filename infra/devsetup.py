"""The development secret and key pairs, made by an explicit step (settings only read them).

    python -m infra.devsetup [--var-dir DIR]

`./dev run` and the test settings call it; a deployment gives SECRET_KEY, API_PUBLIC_KEY and
PRIVATE_KEY instead. Safe to run twice: existing files are kept.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--var-dir", default=os.environ.get("VAR_DIR", "var"))
    ensure_dev_files(Path(parser.parse_args(argv).var_dir))


if __name__ == "__main__":
    main()
