"""The policy tables: labels, their ancestors and confidences to approve / review / reject."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from moderation.backends import Label
from moderation.policy import parse_policy
from uploads.models import State

DEFAULT = parse_policy("")


def outcome(policy, *labels):
    return policy.decide([Label(*label) for label in labels])[0]


def test_nothing_flagged_is_approved():
    assert outcome(DEFAULT) == State.APPROVED


def test_a_rule_on_a_top_level_category_covers_its_grandchildren():
    # Rekognition's taxonomy v7: Explicit > Explicit Nudity > Exposed Male Genitalia.
    labels = [
        ("Exposed Male Genitalia", 99.3, "Explicit Nudity"),
        ("Explicit Nudity", 99.3, "Explicit"),
        ("Explicit", 99.3),
    ]
    policy = parse_policy('{"reject": {"Explicit Nudity": null}}')

    assert outcome(policy, labels[0], labels[1], labels[2]) == State.REJECTED
    assert outcome(policy, labels[0], labels[1]) == State.REJECTED


def test_the_local_model_score_goes_to_review_from_40_and_is_rejected_from_99():
    assert outcome(DEFAULT, ("NSFW", 39.9)) == State.APPROVED
    assert outcome(DEFAULT, ("NSFW", 40.0)) == State.IN_REVIEW
    assert outcome(DEFAULT, ("NSFW", 98.9)) == State.IN_REVIEW
    assert outcome(DEFAULT, ("NSFW", 99.0)) == State.REJECTED


def test_the_strictest_outcome_of_all_labels_wins_and_the_reason_names_it():
    verdict, reason, fired = DEFAULT.decide(
        [Label("Alcohol", 99.9), Label("Explicit Nudity", 99.5)]
    )

    assert verdict == State.REJECTED
    assert reason == "Explicit Nudity 99.5% >= reject threshold 99"
    assert [t.outcome for t in fired] == [State.REJECTED, State.IN_REVIEW]


def test_an_override_changes_one_threshold_and_keeps_the_others():
    policy = parse_policy('{"review": {"NSFW": 20}, "min_confidence": 60}')

    assert policy.review["NSFW"] == 20
    assert policy.review["*"] == 99
    assert policy.reject == DEFAULT.reject
    assert policy.request_confidence == 20


def test_null_removes_a_default_rule():
    policy = parse_policy('{"review": {"*": null}}')

    assert "*" not in policy.review
    assert outcome(policy, ("Alcohol", 99.9)) == State.APPROVED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "MODERATION_POLICY is not JSON"),
        ('{"approve": {}}', "must be an object with keys"),
        ('["reject"]', "must be an object with keys"),
        ('{"reject": 99}', "MODERATION_POLICY reject must map labels"),
        ('{"reject": {"Violence": 120}}', "reject.Violence must be a number 0-100"),
        ('{"review": {"Violence": "high"}}', "review.Violence must be a number 0-100"),
        ('{"min_confidence": true}', "min_confidence must be a number 0-100"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_setting(text, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_policy(text)
