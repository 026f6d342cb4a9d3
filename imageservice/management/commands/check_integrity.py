from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from imageservice.integrity import Options, check_integrity
from infra.cli import since


class Command(BaseCommand):
    help = (
        "Check that every accepted image has its row, its stored original with the recorded "
        "sha256, a final or moving (not stale) state, no repeated transition, its public "
        "objects when published, and its notification delivered, on schedule or visibly "
        "failed. Lists every problem and exits with status 1 when there is any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-checksums",
            action="store_true",
            help="check that originals exist with the recorded size instead of hashing them",
        )
        parser.add_argument("--since", type=since, help="only images created since (24h, 7d, ISO)")
        parser.add_argument(
            "--orphans", action="store_true", help="also find stored originals no row refers to"
        )
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--workers", type=int, default=8, help="parallel storage requests")
        parser.add_argument("--max-listed", type=int, default=200, help="problems printed")

    def handle(self, *args: Any, **options: Any) -> None:
        report = check_integrity(
            Options(
                checksums=not options["no_checksums"],
                since=options["since"],
                orphans=options["orphans"],
                batch_size=max(1, options["batch_size"]),
                workers=max(1, options["workers"]),
            )
        )
        for problem in report.problems[: options["max_listed"]]:
            self.stdout.write(str(problem))
        hidden = len(report.problems) - options["max_listed"]
        if hidden > 0:
            self.stdout.write(f"... and {hidden} more")
        self.stdout.write(report.summary())
        if not report.ok:
            raise CommandError(f"{len(report.problems)} integrity problem(s)", returncode=1)
