"""Complaint spikes suspend a warming IP; it resumes one day back after the period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.send_counts import OutcomeCounts, Send, SendCounters, tally
from services.warmup.domain.state import WarmupState
from services.warmup.domain.suspension import complaint_spike, resume, suspend
from services.warmup.domain.sweep import sweep
from services.warmup.domain.transitions import (
    DailyLimitReached,
    Held,
    HourlyLimitReached,
    Resumed,
    Suspended,
    Transition,
)
from services.warmup.domain.warmup_day import start

IP = "192.0.2.20"
RULES = WarmupRules()
STANDARD = load_schedules(None)["standard-14"]
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def at(day: int, h: int) -> datetime:
    return datetime(2026, 11, day, h, tzinfo=UTC)


def warming_on(day: int) -> WarmupState:
    return start(WarmupState(), STANDARD, T0, "earned").state.model_copy(update={"day": day})


def sends(moment: datetime, delivered: int, complained: int) -> SendCounters:
    batch = [Send(IP, moment, "delivered")] * delivered + [
        Send(IP, moment, "complained")
    ] * complained
    return SendCounters.from_tally(tally(batch), IP)


def decisions(transitions: tuple[Transition, ...]) -> list[Transition]:
    """Transitions other than limits reached (a spike of 1,000 sends also crosses limits)."""
    return [t for t in transitions if not isinstance(t, DailyLimitReached | HourlyLimitReached)]


@pytest.mark.parametrize(
    ("counts", "spike"),
    [
        (OutcomeCounts(delivered=997, complained=3), True),  # 0.30% over 1,000: at threshold
        (OutcomeCounts(delivered=998, complained=2), False),  # 0.20%
        (OutcomeCounts(delivered=990, complained=9), False),  # 999 sends: below the minimum
        (OutcomeCounts(delivered=5_000, complained=20), True),
        (OutcomeCounts(delivered=10_000, complained=29), False),  # 0.29%
    ],
)
def test_complaint_spike_needs_rate_and_volume(counts: OutcomeCounts, spike: bool) -> None:
    assert (complaint_spike(counts, RULES) is not None) is spike


def test_suspend_and_resume_one_day_back() -> None:
    state, (suspended,) = suspend(warming_on(5), at(23, 15), "complaint_spike: x", RULES)
    assert state.status == "suspended" and state.hold_reason == "complaint_spike: x"
    assert suspended == Suspended(at=at(23, 15), until=at(24, 15), reason="complaint_spike: x")
    assert suspended.event_type == "ip.suspended"
    assert state.suspended_until == at(24, 15)
    assert state.limits(STANDARD) == (0, 0)

    state, (resumed,) = resume(state, at(24, 15))
    assert resumed == Resumed(at=at(24, 15), day_from=5, day_to=4)
    assert resumed.event_type == "ip.resumed"
    assert state.status == "warming" and state.day == 4 and state.hold_reason is None
    assert state.suspended_until is None and state.judged_since == at(24, 15)


def test_resume_never_goes_below_day_1() -> None:
    state = suspend(warming_on(1), at(23, 15), "spike", RULES).state
    assert resume(state, at(24, 15)).state.day == 1


def test_suspend_and_resume_ignore_other_statuses() -> None:
    active = warming_on(3).model_copy(update={"status": "active"})
    assert suspend(active, at(23, 15), "spike", RULES) == (active, ())
    assert resume(warming_on(3), at(23, 15)) == (warming_on(3), ())


def test_sweep_suspends_at_the_end_of_the_spike_hour_and_resumes_after_the_period() -> None:
    counters = sends(at(23, 14), delivered=990, complained=10)  # 1% over 1,000 sends
    state, transitions = sweep(warming_on(6), STANDARD, RULES, counters, at(23, 14))
    assert not any(isinstance(t, Suspended) for t in transitions)  # hour 14 still open

    state, transitions = sweep(state, STANDARD, RULES, counters, at(23, 15))
    assert [type(t) for t in decisions(transitions)] == [Suspended]
    assert state.status == "suspended" and state.suspended_until == at(24, 15)

    # The day closes while suspended: no verdict, no hold record.
    state, transitions = sweep(state, STANDARD, RULES, counters, at(24, 15))
    assert [type(t) for t in decisions(transitions)] == [Resumed]
    assert decisions(transitions)[0] == Resumed(at=at(24, 15), day_from=6, day_to=5)
    assert state.status == "warming" and state.day == 5
    assert state.history == ()


def test_the_spike_that_suspended_does_not_suspend_again_after_resuming() -> None:
    # Suspension period 1 hour: the IP resumes the same day with the spike still in the
    # day's counts; only sends from the resume on are judged.
    rules = WarmupRules(suspension_period=timedelta(hours=1))
    spike = sends(at(23, 10), delivered=990, complained=10)
    clean_after = spike.merge(sends(at(23, 12), delivered=50, complained=0))
    state, transitions = sweep(warming_on(6), STANDARD, rules, clean_after, at(23, 13))
    assert [type(t) for t in decisions(transitions)] == [Suspended, Resumed]
    assert state.status == "warming"


def test_a_new_spike_after_resuming_suspends_again() -> None:
    rules = WarmupRules(suspension_period=timedelta(hours=1))
    counters = sends(at(23, 10), delivered=990, complained=10).merge(
        sends(at(23, 12), delivered=995, complained=5)
    )
    state, transitions = sweep(warming_on(6), STANDARD, rules, counters, at(23, 13))
    assert [type(t) for t in decisions(transitions)] == [Suspended, Resumed, Suspended]
    assert state.status == "suspended" and state.day == 5


def test_small_days_hold_on_complaints_instead_of_suspending() -> None:
    counters = sends(at(23, 10), delivered=45, complained=3)  # 6% but only 48 sends
    state, transitions = sweep(warming_on(1), STANDARD, RULES, counters, at(24, 0))
    assert state.status == "warming"
    (held,) = decisions(transitions)
    assert isinstance(held, Held) and held.causes == ("complaint_rate",)
