"""The sweep closes hours and UTC days in event-time order, idempotently."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import Schedule, load_schedules
from services.warmup.domain.send_counts import Send, SendCounters, tally
from services.warmup.domain.state import WarmupState
from services.warmup.domain.sweep import sweep
from services.warmup.domain.transitions import (
    Advanced,
    DailyLimitReached,
    Held,
    HourlyLimitReached,
    Transition,
    Warmed,
)
from services.warmup.domain.warmup_day import start

IP = "192.0.2.40"
RULES = WarmupRules()
SCHEDULES = load_schedules(None)
STANDARD = SCHEDULES["standard-14"]
T0 = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
D0 = T0.date()


def midnight(days_after_start: int) -> datetime:
    return datetime.combine(D0 + timedelta(days=days_after_start), datetime.min.time(), UTC)


def decisions(transitions: tuple[Transition, ...]) -> list[Transition]:
    return [t for t in transitions if not isinstance(t, DailyLimitReached | HourlyLimitReached)]


def deliver_each_day(schedule: Schedule, days: int) -> SendCounters:
    """Each UTC day from the start, deliver the whole daily limit of the day an IP that
    earns every day is on, spread evenly over hours 12..19."""
    rows = []
    for offset in range(days):
        limit = schedule.day(min(offset + 1, schedule.length)).daily_limit
        if limit < 0:
            break
        for hour in range(12, 20):
            share = limit // 8 + (1 if hour - 12 < limit % 8 else 0)
            rows.append((D0 + timedelta(days=offset), hour, "delivered", share))
    return SendCounters.from_rows(rows)


def test_a_not_started_ip_has_nothing_to_sweep() -> None:
    assert sweep(WarmupState(), STANDARD, RULES, SendCounters(), midnight(5)) == (WarmupState(), ())


def test_days_close_for_an_ip_that_sends_nothing_and_it_holds() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    state, transitions = sweep(
        state, STANDARD, RULES, SendCounters(), midnight(3) + timedelta(hours=1)
    )
    assert [(type(t), t.on) for t in transitions] == [  # type: ignore[union-attr]
        (Held, D0),
        (Held, D0 + timedelta(days=1)),
        (Held, D0 + timedelta(days=2)),
    ]
    assert state.day == 1 and state.current_date == D0 + timedelta(days=3)
    assert state.hold_reason == "low_volume: delivered 0 of the 45 needed (90% of 50)"


def test_a_second_sweep_with_the_same_now_decides_nothing() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    counters = deliver_each_day(STANDARD, 3)
    first = sweep(state, STANDARD, RULES, counters, midnight(3))
    again = sweep(first.state, STANDARD, RULES, counters, midnight(3))
    assert first.transitions and again == (first.state, ())
    # An older watermark (a late or replayed sweep) is a no-op too.
    assert sweep(first.state, STANDARD, RULES, counters, midnight(1)) == (first.state, ())


def test_one_long_sweep_equals_many_short_ones() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    counters = deliver_each_day(STANDARD, 6)
    whole = sweep(state, STANDARD, RULES, counters, midnight(6))
    pieces: list[Transition] = []
    step = state
    moment = T0
    while moment < midnight(6):
        moment += timedelta(minutes=97)
        step, transitions = sweep(step, STANDARD, RULES, counters, min(moment, midnight(6)))
        pieces.extend(transitions)
    assert step == whole.state
    assert pieces == list(whole.transitions)


def test_earned_warmup_runs_standard_14_to_warmed_once() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    counters = deliver_each_day(STANDARD, 14)
    state, transitions = sweep(state, STANDARD, RULES, counters, midnight(20))
    made = decisions(transitions)
    assert [t.day_to for t in made if isinstance(t, Advanced)] == list(range(2, 15))
    assert [t for t in made if isinstance(t, Warmed)] == [
        Warmed(on=D0 + timedelta(days=12), day=14)
    ]
    assert not any(isinstance(t, Held) for t in made)
    assert state.status == "active" and state.day == 14
    # Every limited day was reached exactly once.
    daily = [t for t in transitions if isinstance(t, DailyLimitReached)]
    assert [t.day for t in daily] == list(range(1, 14))


def test_an_ip_that_sends_too_little_holds_until_it_earns_the_day() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    # Day 1 (the 23rd): only 30 delivered; the 24th: 50 delivered.
    sends = [Send(IP, midnight(0) + timedelta(hours=12, seconds=i), "delivered") for i in range(30)]
    sends += [
        Send(IP, midnight(1) + timedelta(hours=12, seconds=i), "delivered") for i in range(50)
    ]
    counters = SendCounters.from_tally(tally(sends), IP)
    state, transitions = sweep(state, STANDARD, RULES, counters, midnight(2))
    made = decisions(transitions)
    assert [type(t) for t in made] == [Held, Advanced]
    assert state.day == 2 and state.hold_reason is None


def test_calendar_mode_advances_one_day_per_elapsed_day_without_sends() -> None:
    state = start(WarmupState(), STANDARD, T0, "calendar").state
    state, transitions = sweep(state, STANDARD, RULES, SendCounters(), midnight(5))
    assert [t.day_to for t in transitions if isinstance(t, Advanced)] == [2, 3, 4, 5, 6]
    assert state.day == 6
    state, transitions = sweep(state, STANDARD, RULES, SendCounters(), midnight(20))
    assert state.status == "active"
    assert Warmed(on=D0 + timedelta(days=12), day=14) in transitions


def test_the_start_day_is_judged_however_late_the_start() -> None:
    late = datetime(2026, 11, 23, 23, 50, tzinfo=UTC)
    state = start(WarmupState(), STANDARD, late, "earned").state
    state, transitions = sweep(state, STANDARD, RULES, SendCounters(), midnight(1))
    assert [type(t) for t in transitions] == [Held]
    assert transitions[0].on == date(2026, 11, 23)  # type: ignore[union-attr]


def test_another_schedule_than_the_ips_own_is_refused() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    with pytest.raises(ValueError, match="warms on 'standard-14', not on 'steady-28'"):
        sweep(state, SCHEDULES["steady-28"], RULES, SendCounters(), midnight(1))
