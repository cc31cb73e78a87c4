"""Daily and hourly limits: reported once per day / hour; sends beyond are still counted."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.warmup.domain.daily_limit import check_limits
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.send_counts import Outcome, Send, SendCounters, tally
from services.warmup.domain.state import WarmupState
from services.warmup.domain.sweep import sweep
from services.warmup.domain.transitions import DailyLimitReached, HourlyLimitReached
from services.warmup.domain.warmup_day import start

IP = "192.0.2.10"
TEST3 = load_schedules(None)["test-3"]  # day 1: 10 a day, 5 an hour
RULES = WarmupRules()
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def hour(h: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, h, minute, tzinfo=UTC)


def counters(*spec: tuple[datetime, int], outcome: Outcome = "delivered") -> SendCounters:
    sends = [
        Send(IP, moment + timedelta(seconds=i), outcome) for moment, n in spec for i in range(n)
    ]
    return SendCounters.from_tally(tally(sends), IP)


def started() -> WarmupState:
    return start(WarmupState(), TEST3, START, "earned").state


def test_hourly_limit_is_reported_once_for_the_current_hour() -> None:
    state = started()
    below = check_limits(state, TEST3, counters((hour(9), 4)))
    assert below.transitions == ()
    state, transitions = check_limits(state, TEST3, counters((hour(9), 5)))
    assert transitions == (HourlyLimitReached(hour=hour(9), day=1, limit=5),)
    assert transitions[0].event_type == "ip.hourly_limit_reached"
    # More sends in the same hour: counted, not reported again.
    assert check_limits(state, TEST3, counters((hour(9), 9))).transitions == ()


def test_daily_limit_is_reported_once_per_day_and_sends_beyond_still_count() -> None:
    state = started()
    day_so_far = counters((hour(9), 4), (hour(10), 4), (hour(11), 3))
    # Sweep to 11:30: hours 9 and 10 close, 11 is current; the day reaches 10 during hour 11.
    state, transitions = sweep(state, TEST3, RULES, day_so_far, hour(11, 30))
    assert transitions == (DailyLimitReached(on=date(2026, 11, 23), day=1, limit=10, at=hour(11)),)
    assert transitions[0].event_type == "ip.daily_limit_reached"
    beyond = counters((hour(9), 4), (hour(10), 4), (hour(11), 3), (hour(12), 4))
    state, transitions = sweep(state, TEST3, RULES, beyond, hour(12, 30))
    assert transitions == ()
    assert beyond.day(date(2026, 11, 23)).sent == 15


def test_a_new_day_can_be_reported_again() -> None:
    state = started()
    sends = counters((hour(9), 10), (hour(9, day=24), 20))
    state, transitions = sweep(state, TEST3, RULES, sends, hour(9, 30, day=24))
    daily = [t for t in transitions if isinstance(t, DailyLimitReached)]
    # Day 1 earned (10 delivered >= 9) so the 24th is day 2, limit 20.
    assert daily == [
        DailyLimitReached(on=date(2026, 11, 23), day=1, limit=10, at=hour(9)),
        DailyLimitReached(on=date(2026, 11, 24), day=2, limit=20, at=hour(9, day=24)),
    ]


def test_sends_of_a_later_hour_wait_for_the_watermark() -> None:
    # The watermark is in hour 9; 6 sends counted for hour 10 are not judged yet.
    state = started()
    early = counters((hour(10), 6))
    assert check_limits(state, TEST3, early).transitions == ()
    state, transitions = sweep(state, TEST3, RULES, early, hour(10, 1))
    assert transitions == (HourlyLimitReached(hour=hour(10), day=1, limit=5),)


def test_dropped_sends_do_not_count_against_limits() -> None:
    state = started()
    assert check_limits(state, TEST3, counters((hour(9), 50), outcome="dropped")).transitions == ()


def test_only_a_warming_ip_has_limits_to_reach() -> None:
    busy = counters((hour(9), 50))
    for status in ("not_started", "suspended", "active"):
        state = started().model_copy(update={"status": status})
        assert check_limits(state, TEST3, busy).transitions == ()


def test_hours_before_the_start_do_not_count_towards_hourly_limits() -> None:
    state = start(WarmupState(), TEST3, hour(11, 20), "earned").state
    # Six sends at 09:00, before the start: hour 9 is not judged against the hourly limit.
    assert check_limits(state, TEST3, counters((hour(9), 6))).transitions == ()
    before_and_now = counters((hour(9), 9), (hour(11), 1))
    _, transitions = check_limits(state, TEST3, before_and_now)
    # The daily limit counts the whole UTC day (it is sent_today), morning included.
    assert transitions == (DailyLimitReached(on=date(2026, 11, 23), day=1, limit=10, at=hour(11)),)
