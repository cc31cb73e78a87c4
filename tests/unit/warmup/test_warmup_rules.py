"""WarmupRules: defaults taken from what providers publish, each citing its source."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.warmup.domain.rules import WarmupRules


def test_defaults() -> None:
    rules = WarmupRules()
    assert rules.default_schedule == "standard-14"
    assert rules.default_mode == "earned"
    assert rules.advance_share == 0.9
    assert rules.hold_bounce_rate == 0.05
    assert rules.hold_complaint_rate == 0.001
    assert rules.suspend_complaint_rate == 0.003
    assert rules.suspend_min_sends == 1000
    assert rules.suspension_period == timedelta(hours=24)
    assert rules.idle_period == timedelta(days=30)
    assert rules.rewarm_day == 1
    assert rules.score_window == timedelta(days=30)
    assert rules.score_window_days == 30


@pytest.mark.parametrize(
    ("field", "source"),
    [
        ("advance_share", "SparkPost"),
        ("hold_bounce_rate", "Mailgun"),
        ("hold_complaint_rate", "Gmail"),
        ("suspend_complaint_rate", "Gmail"),
        ("suspend_min_sends", "Gmail"),
        ("idle_period", "SendGrid"),
        ("rewarm_day", "SendGrid"),
        ("score_window", "Validity"),
        ("suspension_period", "Postmaster"),
    ],
)
def test_every_default_cites_its_source(field: str, source: str) -> None:
    description = WarmupRules.model_fields[field].description or ""
    assert source in description


def test_a_hold_threshold_above_the_suspend_threshold_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        WarmupRules(hold_complaint_rate=0.01, suspend_complaint_rate=0.003)


@pytest.mark.parametrize(
    "bad",
    [
        {"advance_share": 0},
        {"advance_share": 1.5},
        {"hold_bounce_rate": -0.1},
        {"suspend_min_sends": 0},
        {"rewarm_day": 0},
        {"suspension_period": timedelta(0)},
        {"unknown_setting": 1},
    ],
)
def test_out_of_range_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WarmupRules.model_validate(bad)


def test_rules_parse_from_settings_strings() -> None:
    # The service will build rules from environment strings; ISO durations and numbers parse.
    rules = WarmupRules.model_validate(
        {"advance_share": "0.8", "suspension_period": "PT12H", "idle_period": "P45D"}
    )
    assert rules.advance_share == 0.8
    assert rules.suspension_period == timedelta(hours=12)
    assert rules.idle_period == timedelta(days=45)
