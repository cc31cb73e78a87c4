"""Bringing one IP up to date, as batches and the sweep both do, and the counter rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.warmup.domain.catch_up import (
    catch_up,
    counters_by_ip,
    decision_time,
    render,
    wide_rows,
)
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.send_counts import (
    ZERO,
    OutcomeCounts,
    Send,
    SendCounters,
    tally,
)
from services.warmup.domain.state import WarmupState
from services.warmup.domain.transitions import Advanced, DailyLimitReached, HourlyLimitReached
from services.warmup.domain.warmup_day import start
from shared.contract.events import WarmupView

RULES = WarmupRules()
TEST3 = load_schedules(None)["test-3"]
T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
D1 = date(2026, 1, 5)


def started() -> WarmupState:
    return start(WarmupState(), TEST3, T0, "earned").state


def delivered(ip: str, at: datetime, n: int) -> SendCounters:
    return SendCounters.from_tally(tally([Send(ip, at, "delivered")] * n), ip)


def test_the_decision_time_is_the_latest_event_time_less_the_lateness() -> None:
    assert decision_time(T0, timedelta(minutes=5)) == T0 - timedelta(minutes=5)


def test_a_tally_becomes_one_row_per_ip_and_hour_with_a_column_per_outcome() -> None:
    sends = [
        Send("ip_b", T0, "bounced"),
        Send("ip_a", T0 + timedelta(minutes=3), "delivered"),
        Send("ip_a", T0, "delivered"),
        Send("ip_a", T0, "dropped"),
        Send("ip_a", T0 + timedelta(hours=1), "complained"),
    ]
    assert wide_rows(tally(sends)) == [
        ("ip_a", D1, 8, 2, 0, 0, 0, 1),
        ("ip_a", D1, 9, 0, 0, 0, 1, 0),
        ("ip_b", D1, 8, 0, 0, 1, 0, 0),
    ]


def test_stored_rows_read_back_as_the_same_counters() -> None:
    sends = [
        *[Send("ip_a", T0, "delivered")] * 3,
        Send("ip_a", T0, "deferred"),
        Send("ip_a", T0 + timedelta(hours=5), "dropped"),
        Send("ip_b", T0 + timedelta(days=1), "complained"),
    ]
    counts = tally(sends)
    read = counters_by_ip(wide_rows(counts))
    assert set(read) == {"ip_a", "ip_b"}
    for ip, counters in read.items():
        assert counters == SendCounters.from_tally(counts, ip)
        assert list(counters) == list(SendCounters.from_tally(counts, ip))


def test_catching_up_closes_hours_and_days_and_the_view_shows_the_result() -> None:
    counters = delivered("ip", T0 + timedelta(hours=1), 5).merge(
        delivered("ip", T0 + timedelta(hours=2), 5)
    )
    now = datetime(2026, 1, 6, 0, 10, tzinfo=UTC)
    state, transitions = catch_up(started(), TEST3, RULES, counters, now)
    kinds = [type(t) for t in transitions]
    assert kinds == [HourlyLimitReached, DailyLimitReached, HourlyLimitReached, Advanced]
    assert [t.event_type for t in transitions] == [
        "ip.hourly_limit_reached",
        "ip.daily_limit_reached",
        "ip.hourly_limit_reached",
        "ip.warmup_advanced",
    ]
    shown = render(state, TEST3, counters, OutcomeCounts(delivered=10), now)
    assert state.day == 2 and shown.view["day"] == 2
    assert shown.view["sent_today"] == 0  # the new UTC day has just begun
    WarmupView.model_validate(shown.view)
    assert shown.score == 55  # 10 clean sends, pulled toward 50


def test_a_second_catch_up_at_the_same_time_decides_nothing_new() -> None:
    counters = delivered("ip", T0 + timedelta(hours=1), 7)
    now = T0 + timedelta(hours=3)
    first = catch_up(started(), TEST3, RULES, counters, now)
    again = catch_up(first.state, TEST3, RULES, counters, now)
    assert first.transitions and again.transitions == ()
    assert again.state == first.state


def test_a_stopped_warmup_decides_nothing_and_says_why() -> None:
    counters = delivered("ip", T0 + timedelta(hours=1), 9)
    now = T0 + timedelta(days=2)
    state, transitions = catch_up(started(), TEST3, RULES, counters, now, "ip.cooldown_started")
    assert transitions == () and state == started()
    shown = render(state, TEST3, counters, ZERO, now, "ip.cooldown_started")
    assert shown.view["hold_reason"] == "stopped: the IP is in cooldown before release"


def test_an_ip_whose_schedule_is_not_loaded_is_shown_but_not_judged() -> None:
    now = T0 + timedelta(days=3)
    state, transitions = catch_up(started(), None, RULES, SendCounters(), now)
    assert transitions == () and state == started()
    shown = render(state, None, SendCounters(), ZERO, now)
    assert shown.view["schedule"] == "test-3" and shown.view["days"] == []
    WarmupView.model_validate(shown.view)


def test_an_ip_not_started_shows_its_sends_today() -> None:
    counters = delivered("ip", T0, 4)
    assert catch_up(WarmupState(), None, RULES, counters, T0).transitions == ()
    shown = render(WarmupState(), None, counters, OutcomeCounts(delivered=4), T0)
    assert shown.view["status"] == "not_started" and shown.view["sent_today"] == 4
