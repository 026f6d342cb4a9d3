"""Load a list of known-content hashes into a bank: `manage.py import_hashes FILE --bank NAME`.

One hash per line: 64 hex digits (PDQ) or 32 (MD5 of the exact file), optionally followed by
a comma and tags. Blank lines and `#` comments are skipped. Invalid lines are reported with
their numbers and skipped (`--strict`: nothing is imported if any line is invalid). Safe to run
twice: hashes already in the bank are not added again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation import banks
from moderation.models import Bank, BankAction

SHOWN_INVALID = 50


class Command(BaseCommand):
    help = "Import PDQ / MD5 hashes (one per line, optional ',tags') into a hash bank."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the list; - for standard input")
        parser.add_argument("--bank", required=True, help="bank name (created if missing)")
        parser.add_argument("--action", choices=[a.value for a in BankAction], default=None)
        parser.add_argument("--distance", type=int, default=None, help="match distance, 0-31")
        parser.add_argument("--provenance", default=None, help="where the list comes from")
        parser.add_argument("--strict", action="store_true", help="all lines or none")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        lines: Iterable[str] = sys.stdin.read().splitlines() if name == "-" else _lines(name)
        if options["strict"]:
            invalid = _invalid_lines(lines)
            if invalid:
                self._report_invalid(invalid)
                raise CommandError(f"{len(invalid)} invalid line(s); nothing imported (--strict)")
            lines = lines if name == "-" else _lines(name)
        bank = self._bank(options)
        # No transaction: a long import shows its progress, and running it again is harmless.
        report = banks.import_lines(bank, lines, progress=self._progress)
        self._report_invalid(report.invalid)
        self.stdout.write(
            f"Bank {bank.name}: {report.read} line(s) read, {report.added} added, "
            f"{report.already_there} already there, {len(report.invalid)} invalid (skipped)."
        )

    def _bank(self, options: dict[str, Any]) -> Bank:
        changes = {
            "action": options["action"],
            "match_distance": options["distance"],
            "provenance": options["provenance"],
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        if not 0 <= changes.get("match_distance", 0) <= 31:
            raise CommandError("--distance must be between 0 and 31")
        bank, created = Bank.objects.get_or_create(name=options["bank"], defaults=changes)
        if created:
            self.stdout.write(f"Created bank {bank.name} ({bank.get_action_display()}).")
        elif changes:
            Bank.objects.filter(pk=bank.pk).update(**changes)
            bank.refresh_from_db()
        return bank

    def _progress(self, report: banks.ImportReport) -> None:
        self.stdout.write(f"  {report.read} read, {report.added} added")

    def _report_invalid(self, invalid: list[tuple[int, str]]) -> None:
        for number, why in invalid[:SHOWN_INVALID]:
            self.stderr.write(f"line {number}: {why}")
        if len(invalid) > SHOWN_INVALID:
            self.stderr.write(f"... and {len(invalid) - SHOWN_INVALID} more invalid line(s)")


def _lines(name: str) -> Iterator[str]:
    try:
        with Path(name).open(encoding="utf-8", errors="replace") as lines:
            yield from lines
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc}") from exc


def _invalid_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    invalid = []
    for number, text in enumerate(lines, start=1):
        try:
            banks.parse_line(text)
        except ValueError as exc:
            invalid.append((number, str(exc)))
    return invalid
