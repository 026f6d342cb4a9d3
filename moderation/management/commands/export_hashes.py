"""Write a hash bank in the format import_hashes reads: `manage.py export_hashes --bank NAME`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation import banks
from moderation.models import Bank


class Command(BaseCommand):
    help = "Export a hash bank: one PDQ or MD5 per line, ',tags' when it has tags."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bank", required=True, help="bank name")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        bank = Bank.objects.filter(name=options["bank"]).first()
        if bank is None:
            raise CommandError(f"no bank named {options['bank']!r}")
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                count = sum(out.write(line + "\n") > 0 for line in banks.export_lines(bank))
            self.stderr.write(f"{count} hash(es) of bank {bank.name} written")
            return
        for line in banks.export_lines(bank):
            self.stdout.write(line)
