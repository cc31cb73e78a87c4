import pytest
from pydantic import ValidationError

from services.reputation.domain.refusals import Refusal
from services.reputation.domain.thresholds import (
    DEFAULT_THRESHOLDS,
    DynamicPoolThresholds,
    merge_thresholds,
)


def test_defaults_are_the_published_ones() -> None:
    assert DEFAULT_THRESHOLDS.model_dump() == {
        "bounce_good": 0.02,
        "bounce_poor": 0.05,
        "complaint_good": 0.001,
        "complaint_poor": 0.003,
        "min_processed_count": 1000,
        "good_checks_to_leave_poor": 2,
    }


@pytest.mark.parametrize("name", list(DynamicPoolThresholds.model_fields))
def test_every_default_cites_its_source(name: str) -> None:
    description = DynamicPoolThresholds.model_fields[name].description or ""
    assert "http" in description or "ipfleet" in description


def test_gmail_rule_is_cited_for_complaints() -> None:
    fields = DynamicPoolThresholds.model_fields
    assert "support.google.com/mail/answer/81126" in (fields["complaint_good"].description or "")
    assert "never reach" in (fields["complaint_poor"].description or "")
    assert "Mailgun" in (fields["bounce_poor"].description or "")


@pytest.mark.parametrize(
    "values",
    [
        {"bounce_good": 0.06},  # above the default bounce_poor of 0.05
        {"complaint_good": 0.004},  # above the default complaint_poor of 0.003
        {"bounce_poor": 1.5},
        {"complaint_good": -0.1},
        {"min_processed_count": -1},
        {"good_checks_to_leave_poor": 0},
        {"unknown_threshold": 0.1},
    ],
)
def test_invalid_thresholds_are_rejected(values: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        DynamicPoolThresholds.model_validate(values)


def test_good_equal_to_poor_is_allowed() -> None:
    thresholds = DynamicPoolThresholds(bounce_good=0.05, bounce_poor=0.05)
    assert thresholds.bounce_good == thresholds.bounce_poor


def test_thresholds_are_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_THRESHOLDS.bounce_good = 0.5


def test_merge_without_overrides_is_the_base() -> None:
    assert merge_thresholds(None) is DEFAULT_THRESHOLDS
    assert merge_thresholds({}) is DEFAULT_THRESHOLDS


def test_merge_applies_given_values_and_keeps_the_rest() -> None:
    merged = merge_thresholds({"bounce_poor": 0.08, "complaint_good": None})
    assert isinstance(merged, DynamicPoolThresholds)
    assert merged.bounce_poor == 0.08
    assert merged.complaint_good == DEFAULT_THRESHOLDS.complaint_good
    assert merged.bounce_good == DEFAULT_THRESHOLDS.bounce_good


def test_merge_onto_an_account_base() -> None:
    account = DynamicPoolThresholds(good_checks_to_leave_poor=5, min_processed_count=10)
    merged = merge_thresholds({"min_processed_count": 50}, account)
    assert isinstance(merged, DynamicPoolThresholds)
    assert (merged.min_processed_count, merged.good_checks_to_leave_poor) == (50, 5)


def test_merge_refuses_a_good_threshold_above_the_base_poor_one() -> None:
    refused = merge_thresholds({"bounce_good": 0.06})
    assert isinstance(refused, Refusal)
    assert refused.code == "invalid"
    assert "bounce_good (0.06) must not exceed bounce_poor (0.05)" in refused.message


def test_merge_refuses_unknown_names_and_out_of_range_values() -> None:
    refused = merge_thresholds({"bounce_ceiling": 0.1, "complaint_poor": 2})
    assert isinstance(refused, Refusal)
    assert "bounce_ceiling" in refused.message
    assert "complaint_poor" in refused.message


def test_merge_accepts_the_configure_command_thresholds_as_they_arrive() -> None:
    # The command's thresholds object has every field optional; its dump merges as is.
    from shared.contract.events import DynamicPoolThresholdsIn

    given = DynamicPoolThresholdsIn(complaint_poor=0.005, good_checks_to_leave_poor=3)
    merged = merge_thresholds(given.model_dump())
    assert isinstance(merged, DynamicPoolThresholds)
    assert merged.complaint_poor == 0.005
    assert merged.good_checks_to_leave_poor == 3
    assert merged.bounce_poor == DEFAULT_THRESHOLDS.bounce_poor
