"""Hash banks: imported PDQ / MD5 lists and our own rejections, matched with each bank's action."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from moderation import banks, pdq
from moderation.models import Bank, BankEntry, BlockedImage, ModerationResult
from moderation.services import moderate
from moderation.tasks import moderate as moderate_and_record
from tests.moderation.test_actor import send, wait_for
from tests.photos import flat, photo
from uploads.models import ImageEvent, State

pytestmark = pytest.mark.django_db


def pdq_hex(data: bytes) -> str:
    with PILImage.open(io.BytesIO(data)) as img:
        return pdq.pdq_of_image(img).hex


def resized(data: bytes, factor: float = 0.5) -> bytes:
    with PILImage.open(io.BytesIO(data)) as img:
        size = (round(img.width * factor), round(img.height * factor))
        out = io.BytesIO()
        img.convert("RGB").resize(size, PILImage.LANCZOS).save(out, "JPEG", quality=80)
    return out.getvalue()


def known(subject: str = "coffee") -> bytes:
    return photo(1200, 800, subject=subject)


def import_file(tmp_path, text: str, bank: str = "partner-list", *args: str) -> tuple[str, str]:
    path = tmp_path / "hashes.txt"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_hashes", str(path), "--bank", bank, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_an_imported_list_keeps_its_good_lines_and_reports_the_bad_ones_by_number(tmp_path):
    good = pdq_hex(known("coffee"))
    md5 = hashlib.md5(b"some file", usedforsecurity=False).hexdigest()
    text = "\n".join(
        [
            "# exported 2026-12-01",
            good.upper() + ",csam, confirmed",
            "",
            "not-a-hash",
            md5,
            good[:-1],
            pdq_hex(known("rocket")),
        ]
    )

    out, err = import_file(tmp_path, text)

    bank = Bank.objects.get(name="partner-list")
    entries = {e.hash: e.tags for e in bank.entries.all()}
    assert entries == {good: "csam, confirmed", md5: "", pdq_hex(known("rocket")): ""}
    assert "line 4: not a PDQ hash (64 hex digits) nor an MD5 (32): 'not-a-hash'" in err
    assert "line 6: not a PDQ hash" in err
    assert "5 line(s) read, 3 added, 0 already there, 2 invalid (skipped)" in out


def test_importing_the_same_list_twice_adds_nothing_the_second_time(tmp_path):
    text = f"{pdq_hex(known('coffee'))}\n{pdq_hex(known('rocket'))}\n{pdq_hex(known('coffee'))}\n"
    import_file(tmp_path, text)

    out, _ = import_file(tmp_path, text)

    assert "3 line(s) read, 0 added, 3 already there" in out
    assert BankEntry.objects.filter(bank__name="partner-list").count() == 2


def test_a_strict_import_of_a_list_with_a_bad_line_imports_nothing(tmp_path):
    with pytest.raises(CommandError, match="1 invalid line"):
        import_file(tmp_path, f"{pdq_hex(known())}\nzzz\n", "strict-list", "--strict")

    assert not BankEntry.objects.filter(bank__name="strict-list").exists()


def test_an_exported_bank_imports_into_another_bank_identically(tmp_path):
    import_file(tmp_path, f"{pdq_hex(known())},a,b\n{'ab' * 16}\n")
    out = io.StringIO()

    call_command("export_hashes", "--bank", "partner-list", stdout=out)
    import_file(tmp_path, out.getvalue(), "copy")

    assert out.getvalue() == f"{pdq_hex(known())},a,b\n{'ab' * 16}\n"
    copied = Bank.objects.get(name="copy").entries.values_list("pdq", "md5", "tags")
    original = Bank.objects.get(name="partner-list").entries.values_list("pdq", "md5", "tags")
    assert sorted(copied) == sorted(original)


def test_an_upload_like_an_entry_of_a_reject_bank_is_rejected_and_its_history_says_which(
    tmp_path, make_image
):
    import_file(tmp_path, f"{pdq_hex(known('chelsea'))},partner:1234\n", "a", "--action=reject")
    entry = BankEntry.objects.get(bank__name="a")
    image = make_image(resized(known("chelsea")))

    moderate_and_record(image)

    image.refresh_from_db()
    assert image.state == State.REJECTED
    result = ModerationResult.objects.get(image=image)
    distance = pdq.distance(int(result.pdq, 16), int(entry.pdq, 16))
    assert distance <= 8
    event = ImageEvent.objects.filter(image=image, to_state=State.REJECTED).get()
    assert event.reason == f"hash bank a: {distance} bits from entry #{entry.pk} [partner:1234]"
    assert event.details["bank"] == {
        "bank": "a",
        "bank_id": entry.bank_id,
        "entry_id": entry.pk,
        "by": "pdq",
        "distance": distance,
        "action": "reject",
        "tags": "partner:1234",
    }
    assert (result.bank_entry, result.bank_distance) == (entry, distance)


def test_an_upload_like_an_entry_of_a_review_bank_goes_to_review(tmp_path, make_image):
    import_file(tmp_path, pdq_hex(known("astronaut")) + "\n", "maybe")
    decision = moderate(make_image(resized(known("astronaut"), 0.7)))

    assert decision.outcome == State.IN_REVIEW
    assert decision.details["bank"]["bank"] == "maybe"
    assert decision.details["bank"]["distance"] <= 8


def test_an_md5_line_matches_the_exact_file(tmp_path, make_image):
    data = known("motorcycle")
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    import_file(tmp_path, f"{md5},exact\n", "files", "--action=reject")

    decision = moderate(make_image(data))

    assert decision.outcome == State.REJECTED
    assert decision.details["bank"]["by"] == "md5"
    assert "the same file (MD5) as entry" in decision.reason


def test_disabling_a_bank_stops_its_matches_at_once(tmp_path, make_image):
    import_file(tmp_path, pdq_hex(known("rocket")) + "\n", "b", "--action=reject")
    assert moderate(make_image(known("rocket"), imageable_id="p1")).outcome == State.REJECTED

    Bank.objects.filter(name="b").update(enabled=False)

    assert moderate(make_image(known("rocket"), imageable_id="p2")).outcome == State.APPROVED


def test_a_match_beyond_the_bank_distance_does_not_count(tmp_path, make_image):
    import_file(tmp_path, pdq_hex(known("coffee")) + "\n", "tight", "--distance=0")
    copy = resized(known("coffee"), 0.33)
    assert pdq.distance(int(pdq_hex(copy), 16), int(pdq_hex(known("coffee")), 16)) > 0

    assert moderate(make_image(copy)).outcome == State.APPROVED


def test_an_unrelated_photo_matches_no_bank(tmp_path, make_image):
    subjects = ("astronaut", "chelsea", "coffee", "rocket")
    import_file(
        tmp_path, "".join(pdq_hex(known(s)) + "\n" for s in subjects), "c", "--action=reject"
    )

    assert moderate(make_image(known("motorcycle"))).outcome == State.APPROVED


def test_a_flat_image_never_matches_by_pdq(tmp_path, make_image):
    import_file(tmp_path, pdq_hex(flat("red", (256, 256))) + "\n", "flat", "--action=reject")

    decision = moderate(make_image(flat("blue", (256, 256))))

    assert decision.outcome == State.APPROVED
    result = ModerationResult.objects.get(pk=decision.details["result_id"])
    assert result.pdq_quality == 0


def test_moderation_stores_the_pdq_hash_and_quality_with_its_result(make_image):
    data = known("chelsea")

    decision = moderate(make_image(data))

    result = ModerationResult.objects.get(pk=decision.details["result_id"])
    assert result.pdq == banks.pdq.to_hex(banks.pdq_of_original_bytes(data).hash)
    assert result.pdq_quality == 100


def test_an_exact_reupload_of_rejected_bytes_is_rejected_with_the_reason(make_image, moderator):
    data = known("astronaut")
    first = make_image(data, state=State.IN_REVIEW, imageable_id="pin-1")
    first.reject(by=moderator, reason="non-consensual imagery")

    again = make_image(data, imageable_id="pin-2")
    moderate_and_record(again)

    again.refresh_from_db()
    assert again.state == State.REJECTED
    assert "the same bytes as blocked image" in again.decision_reason
    assert again.decision_reason.endswith("non-consensual imagery")


def test_a_lookalike_of_a_rejected_image_goes_to_review_through_the_builtin_bank(
    make_image, moderator
):
    first = make_image(known("rocket"), state=State.IN_REVIEW, imageable_id="pin-1")
    first.reject(by=moderator, reason="violence")
    entry = BankEntry.objects.get(bank=Bank.objects.builtin())
    BlockedImage.objects.all().delete()  # the pHash blocklist aside: the bank alone matches

    decision = moderate(make_image(resized(known("rocket"), 0.6), imageable_id="pin-2"))

    assert decision.outcome == State.IN_REVIEW
    assert decision.details["bank"]["entry_id"] == entry.pk
    assert (entry.source_image, entry.reason) == (first, "violence")


def test_a_rejection_reuses_the_hash_moderation_stored(make_image):
    image = make_image(known("coffee"))
    moderate(image)
    stored = ModerationResult.objects.get(image=image).pdq

    entry = banks.add_to_builtin_bank(image, reason="spam")

    assert entry is not None and entry.pdq == stored
    assert banks.add_to_builtin_bank(image, reason="spam") == entry  # safe to run twice


def test_a_new_entry_is_matched_by_an_index_that_had_already_loaded(tmp_path, make_image):
    import_file(tmp_path, pdq_hex(known("chelsea")) + "\n", "d", "--action=reject")
    assert moderate(make_image(known("coffee"), imageable_id="p1")).outcome == State.APPROVED
    assert len(banks.index) == 1

    import_file(tmp_path, pdq_hex(known("coffee")) + "\n", "d")

    assert moderate(make_image(known("coffee"), imageable_id="p2")).outcome == State.REJECTED


def test_a_deleted_entry_stops_matching_before_the_index_reloads(tmp_path, make_image):
    import_file(tmp_path, pdq_hex(known("astronaut")) + "\n", "e", "--action=reject")
    assert moderate(make_image(known("astronaut"), imageable_id="p1")).outcome == State.REJECTED

    BankEntry.objects.filter(bank__name="e").delete()

    assert moderate(make_image(known("astronaut"), imageable_id="p2")).outcome == State.APPROVED
    assert len(banks.index) == 1  # still loaded: confirmed against the table instead


@pytest.mark.django_db(transaction=True)
def test_the_worker_rejects_an_upload_in_a_reject_bank_and_the_history_says_so(
    tmp_path, make_image, broker, stub_worker
):
    import_file(tmp_path, pdq_hex(known("chelsea")) + ",ngo:77\n", "ngo", "--action=reject")
    image = make_image(resized(known("chelsea"), 0.8), state=State.RECEIVED)

    send(image)
    image = wait_for(image, {State.REJECTED, State.IN_REVIEW, State.PUBLISHED})

    assert image.state == State.REJECTED
    event = image.events.get(to_state=State.REJECTED)
    assert (event.actor, event.details["bank"]["bank"]) == ("system:moderate_image", "ngo")
    assert event.details["bank"]["tags"] == "ngo:77"
