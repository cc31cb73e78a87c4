"""The `warmup` object of ip.state_changed, and the IP status the warm-up shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.send_counts import Send, SendCounters, tally
from services.warmup.domain.state import WarmupState
from services.warmup.domain.suspension import suspend
from services.warmup.domain.sweep import sweep
from services.warmup.domain.view import (
    ip_status,
    progress,
    warmup_view,
    with_counts,
    without_counts,
)
from services.warmup.domain.warmup_day import close_day, start
from shared.contract.events import WarmupView

IP = "192.0.2.50"
RULES = WarmupRules()
SCHEDULES = load_schedules(None)
STANDARD = SCHEDULES["standard-14"]
STEADY = SCHEDULES["steady-28"]
T0 = datetime(2025, 1, 10, 10, tzinfo=UTC)

CONTRACT_KEYS = {
    "schedule",
    "mode",
    "day",
    "progress",
    "daily_limit",
    "hourly_limit",
    "sent_today",
    "started_at",
    "hold_reason",
    "days",
}


def sent(moment: datetime, n: int, outcome: str = "delivered") -> SendCounters:
    return SendCounters.from_tally(tally([Send(IP, moment, outcome)] * n), IP)  # type: ignore[arg-type]


def test_a_not_started_ip() -> None:
    view = warmup_view(WarmupState(), None, SendCounters(), T0)
    assert CONTRACT_KEYS <= set(view)
    assert view["status"] == "not_started" and view["day"] is None and view["progress"] == 0.0
    assert (view["daily_limit"], view["hourly_limit"]) == (-1, -1)
    assert view["days"] == []
    assert ip_status(WarmupState()) == "provisioning"
    WarmupView.model_validate(view)


def test_a_warming_ip_shows_its_day_limits_and_todays_sends() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    counters = sent(T0 + timedelta(minutes=5), 30).merge(sent(T0, 7, "dropped"))
    view = warmup_view(state, STANDARD, counters, T0 + timedelta(hours=2))
    assert view["status"] == "warming" and ip_status(state) == "warming"
    assert (view["schedule"], view["mode"], view["day"]) == ("standard-14", "earned", 1)
    assert (view["daily_limit"], view["hourly_limit"]) == (50, 20)
    assert view["sent_today"] == 30  # dropped never left the IP
    assert view["started_at"] == "2025-01-10T10:00:00Z"
    assert view["progress"] == 0.0
    assert len(view["days"]) == 14
    assert view["days"][0] == {"day": 1, "limit": 50, "sent": 30, "done": False}
    assert view["days"][13] == {"day": 14, "limit": -1, "sent": 0, "done": False}
    parsed = WarmupView.model_validate(view)
    assert parsed.started_at == T0


def test_progress_is_the_share_of_days_completed() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    assert progress(state.model_copy(update={"day": 7}), STANDARD) == round(6 / 14, 4)
    assert progress(state.model_copy(update={"day": 1}), STANDARD) == 0.0
    assert progress(state.model_copy(update={"day": 15}), STEADY) == 0.5
    assert progress(state.model_copy(update={"status": "active", "day": 14}), STANDARD) == 1.0


def test_days_show_what_each_closed_day_sent_and_whether_it_was_done() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    day1 = T0.date()
    counters = sent(T0, 20).merge(sent(T0 + timedelta(days=1), 50))
    state = sweep(state, STANDARD, RULES, counters, T0 + timedelta(days=2)).state
    view = warmup_view(state, STANDARD, counters, T0 + timedelta(days=2))
    # The 10th held (20 < 45), the 11th earned day 1 (50): the record keeps the last try.
    assert view["days"][0] == {"day": 1, "limit": 50, "sent": 50, "done": True}
    assert view["days"][1] == {"day": 2, "limit": 100, "sent": 0, "done": False}
    assert view["day"] == 2 and view["hold_reason"] is None
    assert view["progress"] == round(1 / 14, 4)
    assert state.history[0].on == day1 + timedelta(days=1)


def test_a_held_ip_shows_the_reason() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    state = sweep(state, STANDARD, RULES, sent(T0, 10), T0 + timedelta(days=1)).state
    view = warmup_view(state, STANDARD, SendCounters(), T0 + timedelta(days=1))
    assert view["hold_reason"] == "low_volume: delivered 10 of the 45 needed (90% of 50)"
    assert view["days"][0]["sent"] == 0  # the current day shows today's sends


def test_a_suspended_ip_may_send_nothing() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state.model_copy(update={"day": 4})
    state = suspend(state, T0 + timedelta(hours=3), "complaint_spike: 1.00%", RULES).state
    view = warmup_view(state, STANDARD, SendCounters(), T0 + timedelta(hours=4))
    assert view["status"] == "suspended" and ip_status(state) == "suspended"
    assert (view["daily_limit"], view["hourly_limit"]) == (0, 0)
    assert view["hold_reason"] == "complaint_spike: 1.00%"
    assert view["suspended_until"] == "2025-01-11T13:00:00Z"
    WarmupView.model_validate(view)


def test_an_active_ip_is_unlimited_and_complete() -> None:
    state = start(WarmupState(), STEADY, T0, "earned").state.model_copy(update={"day": 28})
    state = close_day(state, T0.date(), sent(T0, 25_000).day(T0.date()), RULES, STEADY).state
    view = warmup_view(state, STEADY, SendCounters(), T0 + timedelta(days=1))
    assert view["status"] == "completed" and ip_status(state) == "active"
    assert (view["daily_limit"], view["hourly_limit"], view["progress"]) == (-1, -1, 1.0)
    assert all(d["done"] for d in view["days"])
    assert view["days"][27]["sent"] == 25_000
    WarmupView.model_validate(view)


@pytest.mark.parametrize("status", ["not_started", "warming", "suspended", "active"])
def test_the_state_survives_a_json_round_trip(status: str) -> None:
    state = start(WarmupState(), STANDARD, T0, "calendar").state
    state = sweep(state, STANDARD, RULES, sent(T0, 60), T0 + timedelta(days=2)).state
    state = state.model_copy(update={"status": status})
    loaded = WarmupState.model_validate_json(state.model_dump_json())
    assert loaded == state


@pytest.mark.parametrize("status", ["not_started", "warming", "suspended", "active"])
def test_the_stored_view_without_counts_reads_back_as_rendered(status: str) -> None:
    """`ip_warmup_views` keeps the view without the day's running count; reading it back
    with the count as the counters hold it gives the view `warmup_view` renders, whatever
    the count at the time it was stored."""
    state = start(WarmupState(), STANDARD, T0, "earned").state
    counters = sent(T0, 20).merge(sent(T0 + timedelta(days=1, hours=1), 33))
    now = T0 + timedelta(days=1, hours=2)
    state = sweep(state, STANDARD, RULES, counters, now).state
    state = state.model_copy(update={"status": status})
    view = warmup_view(state, STANDARD if status != "not_started" else None, counters, now)
    stored = without_counts(view)
    assert "sent_today" not in stored
    assert with_counts(stored, view["sent_today"]) == view
    earlier = warmup_view(state, STANDARD if status != "not_started" else None, sent(T0, 20), now)
    assert without_counts(earlier) == stored
    WarmupView.model_validate(with_counts(stored, 0))
